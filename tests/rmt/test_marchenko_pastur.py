"""MP law: closed forms vs quadrature, quantiles, moments, edges, atom, sampling (M-Thm 2.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from certkit.rmt import (
    MarchenkoPastur,
    covariance_eigenvalues,
    mp_cdf,
    mp_edges,
    mp_moments,
    mp_pdf,
    mp_sigma_plus,
    sample_mp,
    singular_values,
)

RATIOS = [0.05, 0.25, 0.5, 1.0, 2.0, 4.0, 9.0]
SIGMA2 = [1.0, 0.37]


def _quad_pdf(c, s2, a, b):
    lo, hi = mp_edges(c, s2)
    brk = [p for p in (lo, hi) if a < p < b]
    return quad(lambda t: mp_pdf(t, c, s2), a, b, points=brk or None, limit=400,
                epsabs=1e-13, epsrel=1e-12)[0]


@pytest.mark.parametrize("c", RATIOS)
@pytest.mark.parametrize("s2", SIGMA2)
def test_pdf_integrates_to_continuous_mass(c, s2):
    lo, hi = mp_edges(c, s2)
    assert _quad_pdf(c, s2, lo, hi) == pytest.approx(min(1.0, 1.0 / c), abs=1e-8)


@pytest.mark.parametrize("c", RATIOS)
@pytest.mark.parametrize("s2", SIGMA2)
def test_cdf_matches_quadrature(c, s2):
    lo, hi = mp_edges(c, s2)
    atom = max(0.0, 1.0 - 1.0 / c)
    for x in np.linspace(lo, hi, 9)[1:-1]:
        assert mp_cdf(x, c, s2) == pytest.approx(atom + _quad_pdf(c, s2, lo, x), abs=1e-8)


@pytest.mark.parametrize("c", RATIOS)
def test_cdf_outside_support_and_atom(c):
    s2 = 0.5
    lo, hi = mp_edges(c, s2)
    atom = max(0.0, 1.0 - 1.0 / c)
    assert mp_cdf(-1e-9, c, s2) == 0.0
    assert mp_cdf(0.0, c, s2) == pytest.approx(atom, abs=1e-15)
    if lo > 0:
        assert mp_cdf(0.5 * lo, c, s2) == pytest.approx(atom, abs=1e-15)
    # correct behaviour above the edge (the legacy code returns 0 here, ALGORITHMS §1.5)
    assert mp_cdf(hi, c, s2) == 1.0
    assert np.all(mp_cdf(np.array([hi * 1.0001, 2 * hi, 1e6]), c, s2) == 1.0)
    law = MarchenkoPastur(c, s2)
    assert law.atom == pytest.approx(atom)
    assert law.cdf_continuous(hi * 2) == 1.0 and law.cdf_continuous(lo) == 0.0
    # the CDF is monotone
    xs = np.linspace(-0.1, hi * 1.1, 2001)
    assert np.all(np.diff(law.cdf(xs)) >= -1e-15)


def test_pdf_zero_outside_and_vectorized():
    c, s2 = 0.25, 2.0
    lo, hi = mp_edges(c, s2)
    x = np.array([-1.0, 0.0, lo, 0.5 * (lo + hi), hi, hi + 1])
    f = mp_pdf(x, c, s2)
    assert f.shape == x.shape
    assert f[0] == f[1] == f[2] == f[4] == f[5] == 0.0
    assert f[3] > 0
    assert isinstance(mp_pdf(1.0, c, s2), float)


@pytest.mark.parametrize("c", RATIOS)
def test_ppf_cdf_round_trip(c):
    law = MarchenkoPastur(c, 0.7)
    u = np.linspace(0.0, 1.0, 201)
    x = law.ppf_continuous(u)
    assert np.max(np.abs(law.cdf_continuous(x) - u)) < 1e-12
    q = np.linspace(law.atom + 1e-9, 1.0, 101)
    assert np.max(np.abs(law.cdf(law.ppf(q)) - q)) < 1e-12
    # x -> cdf -> ppf on the interior of the support
    lo, hi = law.edges
    xs = np.linspace(lo, hi, 51)[1:-1]
    assert np.max(np.abs(law.ppf_continuous(law.cdf_continuous(xs)) - xs)) < 1e-9 * hi
    if c > 1:
        assert law.ppf(0.5 * law.atom) == 0.0


def test_edges_and_sigma_plus():
    lo, hi = mp_edges(4.0, 0.5)
    assert (lo, hi) == pytest.approx((0.5, 4.5))
    # roots of x^2 - 2σ²(1+c)x + σ⁴(1-c)^2
    for c in RATIOS:
        lo, hi = mp_edges(c, 1.3)
        for r in (lo, hi):
            assert r * r - 2 * 1.3 * (1 + c) * r + 1.3**2 * (1 - c) ** 2 == pytest.approx(0, abs=1e-12)
    N, M, v = 300, 1200, 0.02**2
    assert mp_sigma_plus(N, M, v) == pytest.approx(math.sqrt(N * mp_edges(M / N, v)[1]))


@pytest.mark.parametrize("c", [0.25, 1.0, 4.0])
def test_moments_closed_form_and_quadrature(c):
    s2 = 0.8
    m = mp_moments([0, 1, 2, 3, 4], c, s2)
    closed = [1, s2, s2**2 * (1 + c), s2**3 * (1 + 3 * c + c * c),
              s2**4 * (1 + 6 * c + 6 * c * c + c**3)]
    np.testing.assert_allclose(m, closed, rtol=1e-14)
    lo, hi = mp_edges(c, s2)
    for k in range(1, 5):
        qk = quad(lambda t, k=k: t**k * mp_pdf(t, c, s2), lo, hi, limit=400)[0]
        assert mp_moments(k, c, s2) == pytest.approx(qk, rel=1e-8)
    law = MarchenkoPastur(c, s2)
    assert law.var() == pytest.approx(law.moment(2) - law.moment(1) ** 2)


@pytest.mark.parametrize("N,M", [(400, 100), (300, 300), (150, 600)])
def test_moments_vs_empirical(N, M):
    ev = sample_mp(N, M, 0.5, seed=1)
    assert ev.shape == (M,)
    for k in range(1, 5):
        emp = np.mean(ev**k)
        assert emp == pytest.approx(mp_moments(k, M / N, 0.5), rel=0.1 * k)


@pytest.mark.parametrize("law", ["gaussian", "rademacher", "uniform", "student_t3"])
def test_sample_mp_structural_zeros_and_ks(law):
    N, M = 200, 500
    ev = sample_mp(N, M, 2.0, seed=3, law=law)
    assert np.all(np.diff(ev) >= 0)
    assert np.count_nonzero(ev <= 1e-10 * ev.max()) == M - N
    nz = ev[M - N:]
    F = MarchenkoPastur(M / N, 2.0).cdf_continuous(nz)
    i = np.arange(N)
    ks = np.max(np.maximum((i + 1) / N - F, F - i / N))
    assert ks < 0.08


def test_covariance_eigenvalues_vs_singular_values():
    rng = np.random.default_rng(0)
    for N, M in [(7, 3), (3, 7), (5, 5)]:
        W = rng.standard_normal((N, M))
        ev = covariance_eigenvalues(W)
        s = singular_values(W)
        expect = np.sort(np.concatenate([s**2 / N, np.zeros(M - min(N, M))]))
        np.testing.assert_allclose(ev, expect, atol=1e-12)
        np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(W.T @ W / N)), expect, atol=1e-12)
        np.testing.assert_allclose(singular_values(W, method="gram"), s, atol=1e-7)


def test_rvs_matches_law():
    law = MarchenkoPastur(2.0, 1.0)
    x = law.rvs(20000, seed=0)
    assert np.mean(x == 0.0) == pytest.approx(0.5, abs=0.02)
    assert np.mean(x) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mp_pdf(1.0, 0.0, 1.0),
        lambda: mp_pdf(1.0, -1.0, 1.0),
        lambda: mp_cdf(1.0, 1.0, 0.0),
        lambda: mp_cdf(float("nan"), 1.0, 1.0),
        lambda: mp_edges(float("inf"), 1.0),
        lambda: MarchenkoPastur(1.0).ppf(1.5),
        lambda: mp_moments(-1, 1.0, 1.0),
        lambda: sample_mp(10, 10, law="cauchy"),
        lambda: sample_mp(0, 10),
    ],
)
def test_invalid_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def test_error_names_argument():
    with pytest.raises(ValueError, match="c"):
        mp_pdf(1.0, -2.0, 1.0)
    with pytest.raises(ValueError, match="ratio"):
        MarchenkoPastur(ratio=0.0)
    with pytest.raises(ValueError, match="sigma2"):
        mp_edges(1.0, -1.0)
