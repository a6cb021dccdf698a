"""Assertion helpers of certkit.testing.checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from certkit.lipschitz import lipschitz_L0, lipschitz_L3
from certkit.mlp import MLP
from certkit.results import Certificate, LipschitzBound
from certkit.testing import (
    LipschitzSoundnessReport,
    assert_certificate_holds,
    assert_lipschitz_sound,
    certification_problems,
    check_lipschitz_sound,
)


def _cert(lhs, rhs, certified=True, kind="check"):
    return Certificate(result="M-Lemma 5.1", statement="lhs <= rhs", kind=kind, lhs=lhs, rhs=rhs,
                       certified=certified, lipschitz_method="L0")


def test_assert_certificate_holds():
    assert_certificate_holds(_cert(1.0, 2.0))
    assert_certificate_holds(_cert(3.0, 2.0, certified=False))  # estimate: allowed to fail
    assert_certificate_holds(_cert(None, 2.0, kind="bound"))
    assert_certificate_holds(_cert(3.0, 2.0, kind="condition"))  # unmet condition: no violation
    with pytest.raises(AssertionError, match="does not hold") as info:
        assert_certificate_holds(_cert(3.0, 2.0))
    msg = str(info.value)
    assert '"lhs": 3.0' in msg and '"result": "M-Lemma 5.1"' in msg
    with pytest.raises(AssertionError, match="not certified"):
        assert_certificate_holds(_cert(1.0, 2.0, certified=False), require_certified=True)


def _line():
    # ψ2(u) = 2u on the last layer: f(θ) = 2(S + θR)v + b, slope 2·Rv
    mlp = MLP((torch.tensor([[1.0]]), torch.tensor([[2.0]])),
              (torch.tensor([5.0]), torch.tensor([0.0])), "relu", False)
    return mlp, torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([[1.0], [2.0]])


def test_check_lipschitz_sound_on_a_line():
    mlp, S, R, x = _line()
    rep = check_lipschitz_sound(mlp, 0, torch.zeros(1, 1), R, x, lipschitz_L3(mlp, 0, S, R, x))
    assert isinstance(rep, LipschitzSoundnessReport)
    assert rep.ok and rep.method == "L3" and not rep.violations
    assert rep.max_secant == pytest.approx((2.0, 2.0))
    bad = check_lipschitz_sound(mlp, 0, S, R, x, [1.0, 2.0])
    assert not bad.ok and [v.sample for v in bad.violations] == [0]
    assert bad.violations[0].ratio == pytest.approx(2.0)
    assert "VIOLATED" in bad.summary() and "sample 0" in bad.summary()
    with pytest.raises(AssertionError, match="VIOLATED"):
        assert_lipschitz_sound(mlp, 0, S, R, x, 1.0)
    assert assert_lipschitz_sound(mlp, 0, S, R, x, 2.0).ok


@given(certification_problems(max_samples=3))
@settings(deadline=None)
def test_check_accepts_rigorous_bounds(p):
    for b in (lipschitz_L0(p.mlp, p.k), lipschitz_L3(p.mlp, p.k, p.S, p.R, p.x)):
        assert_lipschitz_sound(p.mlp, p.k, p.S, p.R, p.x, b, n_grid=17)


def test_check_bad_input():
    mlp, S, R, x = _line()
    with pytest.raises(ValueError, match="bound must have"):
        check_lipschitz_sound(mlp, 0, S, R, x, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="n_grid"):
        check_lipschitz_sound(mlp, 0, S, R, x, 1.0, n_grid=1)
    with pytest.raises(ValueError, match="extra_thetas"):
        check_lipschitz_sound(mlp, 0, S, R, x, 1.0, extra_thetas=[1.5])
    with pytest.raises(ValueError, match="S and R"):
        check_lipschitz_sound(mlp, 0, S, torch.zeros(2, 1), x, 1.0)
    with pytest.raises(TypeError, match="mlp"):
        check_lipschitz_sound(None, 0, S, R, x, 1.0)
    lb = LipschitzBound((2.0,), certified=False, method="estimate:secant")
    assert check_lipschitz_sound(mlp, 0, S, R, x, lb).method == "estimate:secant"
