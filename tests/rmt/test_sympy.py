"""Symbolic checks S1–S12 of THEORY §3.3 (each runs in seconds)."""

from __future__ import annotations

import sympy as sp

from certkit.rmt import bbp_outlier, inverse_bbp, johnstone_constant, mp_edges, mp_moments

phi = sp.symbols("phi", real=True)
pos = dict(positive=True)


def _mp_phi_integrand(c, s2):
    """f(x)dx under x(φ) = σ²(1 + c + 2√c cos φ): (2σ²/π) sin²φ / x(φ) dφ on [0, π]."""
    x = s2 * (1 + c + 2 * sp.sqrt(c) * sp.cos(phi))
    return 2 * s2 / sp.pi * sp.sin(phi) ** 2 / x, x


def test_S1_total_mass():
    x = sp.symbols("x", positive=True)
    for c in [sp.Rational(1, 9), sp.Rational(1, 4), sp.Integer(1), sp.Integer(4), sp.Integer(9)]:
        lo, hi = (1 - sp.sqrt(c)) ** 2, (1 + sp.sqrt(c)) ** 2
        # check the φ-substitution symbolically: f(x(φ)) |x'(φ)| = (2/π) sin²φ / x(φ)
        integrand, xphi = _mp_phi_integrand(c, sp.Integer(1))
        f = sp.sqrt((hi - x) * (x - lo)) / (2 * sp.pi * c * x)
        jac = sp.Abs(sp.diff(xphi, phi))
        lhs = (f.subs(x, xphi) * jac).subs(phi, sp.Rational(7, 10))
        assert abs(sp.N(lhs - integrand.subs(phi, sp.Rational(7, 10)), 30)) < 1e-25
        # exact mass via ∫_0^π dφ/(a + b cos φ) = π/√(a²−b²) and the partial fractions of
        # sin²φ/(a + b cos φ) = (a − b cos φ)/b² + (1 − a²/b²)/(a + b cos φ)
        a, b = 1 + c, 2 * sp.sqrt(c)
        if c == 1:  # a = b: sin²φ/(2 + 2cos φ) = (1 − cos φ)/2
            mass = sp.integrate(2 / sp.pi * (1 - sp.cos(phi)) / 2, (phi, 0, sp.pi))
            assert mass == 1
            continue
        assert sp.simplify(sp.sin(phi) ** 2 / (a + b * sp.cos(phi))
                           - ((a - b * sp.cos(phi)) / b**2 + (1 - a**2 / b**2) / (a + b * sp.cos(phi)))) == 0
        poly_part = sp.integrate((a - b * sp.cos(phi)) / b**2, (phi, 0, sp.pi))
        frac_part = (1 - a**2 / b**2) * sp.pi / sp.sqrt(a**2 - b**2)
        mass = sp.nsimplify(sp.simplify(2 / sp.pi * (poly_part + frac_part)))
        assert sp.simplify(mass - sp.Min(1, 1 / c)) == 0
        assert sp.simplify(mass + sp.Max(0, 1 - 1 / c) - 1) == 0


def test_S1_direct_integration_c_quarter():
    # direct exact integration in x for one ratio (c = 1/4: mass 1)
    x = sp.symbols("x", positive=True)
    c = sp.Rational(1, 4)
    lo, hi = (1 - sp.sqrt(c)) ** 2, (1 + sp.sqrt(c)) ** 2
    f = sp.sqrt((hi - x) * (x - lo)) / (2 * sp.pi * c * x)
    val = sp.integrate(f, (x, lo, hi))
    assert abs(float(sp.N(val)) - 1.0) < 1e-12


def test_S2_moments():
    r, s2 = sp.symbols("r sigma2", **pos)  # r = √c
    c = r**2
    for k in range(1, 5):
        integrand, x = _mp_phi_integrand(c, s2)
        expr = sp.expand(2 * s2 / sp.pi * sp.sin(phi) ** 2 * x ** (k - 1))  # x^k / x cancelled
        mk = sp.simplify(sp.integrate(expr, (phi, 0, sp.pi)))
        nar = s2**k * sum(sp.binomial(k, j) * sp.binomial(k, j - 1) / k * c ** (j - 1)
                          for j in range(1, k + 1))
        assert sp.simplify(mk - nar) == 0
        # agrees with the implementation at a sample point
        val = float(mk.subs({r: sp.Rational(3, 2), s2: sp.Rational(1, 3)}))
        assert abs(val - mp_moments(k, 9 / 4, 1 / 3)) < 1e-12 * max(1.0, abs(val))


def test_S3_edges_are_roots():
    c, s2, x = sp.symbols("c sigma2 x", **pos)
    roots = sp.solve(x**2 - 2 * s2 * (1 + c) * x + s2**2 * (1 - c) ** 2, x)
    expect = [s2 * (1 - sp.sqrt(c)) ** 2, s2 * (1 + sp.sqrt(c)) ** 2]
    assert len(roots) == 2
    for e in expect:
        assert any(sp.simplify(sp.expand(rt - e)) == 0 for rt in roots)
    lo, hi = mp_edges(2.5, 0.7)
    assert abs(lo - float(expect[0].subs({c: 2.5, s2: 0.7}))) < 1e-14
    assert abs(hi - float(expect[1].subs({c: 2.5, s2: 0.7}))) < 1e-14


def test_S4_sigma_plus_scales():
    """S4 / M-Rem 2.3: σ₊ = sqrt(N·λ₊) = √g(1+√c) = √v(√N+√M)."""
    N, M, g = sp.symbols("N M g", **pos)
    c = M / N
    lam_plus = (g / N) * (1 + sp.sqrt(c)) ** 2
    assert sp.simplify(sp.sqrt(N * lam_plus) - sp.sqrt(g) * (1 + sp.sqrt(c))) == 0
    v = g / N
    assert sp.simplify(sp.sqrt(N * lam_plus) - sp.sqrt(v) * (sp.sqrt(N) + sp.sqrt(M))) == 0


def test_S5_square_bbp():
    g, u = sp.symbols("g u", **pos)
    sigma = sp.sqrt(g) * (1 + u)  # supercritical: σ > √g
    s = sigma + g / sigma
    assert sp.simplify(s**2 - 4 * g - (sigma - g / sigma) ** 2) == 0
    sig_hat = (s + sp.sqrt(s**2 - 4 * g)) / 2
    assert sp.simplify(sp.sqrt(sp.factor(s**2 - 4 * g)) - (sigma - g / sigma)) == 0
    assert sp.simplify(sig_hat.subs(sp.sqrt(s**2 - 4 * g), sigma - g / sigma) - sigma) == 0
    sg = sp.sqrt(g)
    assert sp.simplify((sg + g / sg) - 2 * sg) == 0
    S_ = sp.Symbol("S", positive=True)
    ds = sp.diff(S_ + g / S_, S_).subs(S_, sigma)  # s'(σ) = 1 − g/σ² on (√g, ∞)
    assert sp.simplify(ds - u * (u + 2) / (1 + u) ** 2) == 0
    assert (u * (u + 2) / (1 + u) ** 2).is_positive
    # 0 <= s − σ̂ = 2g/(s + sqrt(s² − 4g))
    sv = sp.Symbol("s", positive=True)
    expr = (sv - (sv + sp.sqrt(sv**2 - 4 * g)) / 2) - 2 * g / (sv + sp.sqrt(sv**2 - 4 * g))
    assert sp.simplify(sp.radsimp(expr)) == 0
    assert abs(bbp_outlier(3.0, noise_variance=2.0) - (3 + 2 / 3)) < 1e-15


def test_S6_mp_edge_budget_equals_gaussian_budget():
    g, n, m, logt, A = sp.symbols("g n m ell A", **pos)  # ell = log(2n|T|/δ), A = mean L‖v‖
    rhs_510 = 2 * A * sp.sqrt(2 * g / n * logt)
    sigma_plus = sp.sqrt(g) * (1 + sp.sqrt(m / n))
    rhs_511 = 2 * sigma_plus / (1 + sp.sqrt(m / n)) * sp.sqrt(2 / n * logt) * A
    assert sp.simplify(rhs_510 - rhs_511) == 0


def test_S7_gaussian_tail_algebra():
    g, n, v, T, delta, c, N, M = sp.symbols("g n v T delta c N M", **pos)
    ell = sp.log(2 * n * T / delta)
    # M-Cor 5.10
    t = v * sp.sqrt(2 * g / n * ell)
    assert sp.simplify(2 * sp.exp(-t**2 / (2 * (g / n) * v**2)) - delta / (n * T)) == 0
    # E-Cor 1.4 (tail constant c)
    t = v * sp.sqrt(g / (c * n) * ell)
    assert sp.simplify(2 * sp.exp(-c * n * t**2 / (g * v**2)) - delta / (n * T)) == 0
    # E-Thm 3.20: t_{N,δ} = sqrt(2g log(2NM/δ)/N) and entries of variance g/N
    t = sp.sqrt(2 * g * sp.log(2 * N * M / delta) / N)
    assert sp.simplify(2 * sp.exp(-t**2 / (2 * g / N)) - delta / (N * M)) == 0
    # main-text example: N · 2(2N)^{-4} = 1/(8N³) <= 1/N
    assert sp.simplify(N * 2 * (2 * N) ** (-4) - 1 / (8 * N**3)) == 0
    assert sp.simplify(1 / N - 1 / (8 * N**3)).subs(N, 1) > 0
    assert sp.solve(sp.Eq(1 / (8 * N**3), 1 / N), N) == [sp.sqrt(2) / 4]  # equality only at N<1


def test_S8_disjoint_support_identities():
    s, r = sp.symbols("s r", real=True)
    th = sp.Symbol("theta", nonnegative=True)
    for case in ({s: 0}, {r: 0}):  # s·r = 0
        assert sp.simplify(((s + th * r) ** 2 - s**2 - th**2 * r**2).subs(case)) == 0
        assert sp.simplify((sp.Abs(s + th * r) - sp.Abs(s) - th * sp.Abs(r)).subs(case)) == 0
    # Frobenius path identity (M-Thm 5.3) for generic 2×3 matrices
    S = sp.Matrix(2, 3, sp.symbols("s0:6", real=True))
    R = sp.Matrix(2, 3, sp.symbols("r0:6", real=True))

    def fro2(X):
        return sum(e**2 for e in X)

    inner = sum(a * b for a, b in zip(S, R, strict=True))
    lhs = fro2(S + th * R) - fro2(S + R)
    rhs = -(1 - th**2) * fro2(R) - 2 * (1 - th) * inner
    assert sp.expand(lhs - rhs) == 0


def test_S9_stationarity_algebra():
    h, B, F, E, l1, l2, th = sp.symbols("h B F E lambda1 lambda2 theta", real=True)
    expr = (h * B - l2 * (2 * h - h**2) * F - l1 * h * E) / h
    assert sp.simplify(sp.limit(expr, h, 0, "+") - (B - 2 * l2 * F - l1 * E)) == 0
    hh = 1 - th
    per_theta = (hh * B - l2 * (2 * hh - hh**2) * F - l1 * hh * E) / (1 - th)
    assert sp.simplify(per_theta - (B - l2 * (1 + th) * F - l1 * E)) == 0


def test_S10_rectangular_bbp_inverse():
    t, cp = sp.symbols("theta c", **pos)
    rho2 = (1 + t**2) * (cp + t**2) / t**2
    assert sp.expand(sp.simplify((rho2 - 1 - cp) ** 2 - 4 * cp - (t**2 - cp / t**2) ** 2)) == 0
    for c_val in [sp.Rational(1, 9), sp.Rational(1, 4), sp.Rational(1, 2), sp.Integer(1)]:
        crit = c_val ** sp.Rational(1, 4)
        # continuity at threshold: ρ' = 1 + √c'
        assert sp.simplify(sp.sqrt(rho2.subs({t: crit, cp: c_val})) - (1 + sp.sqrt(c_val))) == 0
        for t_val in [crit * sp.Rational(11, 10), crit * 2, sp.Integer(3)]:
            r2 = rho2.subs({t: t_val, cp: c_val})
            a = r2 - 1 - c_val
            inv2 = (a + sp.sqrt(a**2 - 4 * c_val)) / 2
            assert sp.simplify(sp.sqrtdenest(sp.sqrt(sp.nsimplify(inv2))) - t_val) == 0 or \
                abs(sp.N(sp.sqrt(inv2) - t_val, 40)) < 1e-30
            # implementation (κ = 1: g = n·v with v·q = 1)
            q = 3600
            p = int(c_val * q)
            est = inverse_bbp(float(sp.sqrt(r2)), noise_variance=p / q, shape=(p, q))
            assert abs(est - float(t_val)) < 1e-10


def test_S11_johnstone_constant_square():
    c = sp.Integer(1)
    const = (1 + sp.sqrt(c)) * (1 + c ** sp.Rational(-1, 2)) ** sp.Rational(1, 3)
    assert sp.nsimplify(const) == 2 ** sp.Rational(4, 3)
    assert abs(johnstone_constant(1.0) - 2 ** (4 / 3)) < 1e-14
    # the authors' "(1+√γ)**4/3" is ((1+√γ)^4)/3 = 16/3 at γ = 1, not 2^{4/3}
    assert sp.Integer(2) ** 4 / 3 != 2 ** sp.Rational(4, 3)


def test_S12_cross_entropy_gradient_l1():
    z = sp.symbols("z0:3", real=True)
    Z = sum(sp.exp(zi) for zi in z)
    rho = [sp.exp(zi) / Z for zi in z]
    for y in range(3):
        terms = []
        for j in range(3):
            d = sp.together(rho[j] - (1 if j == y else 0))
            terms.append(sp.Abs(d))
        total = sp.simplify(sum(terms))
        assert sp.simplify(total - 2 * (1 - rho[y])) == 0
