"""certkit.mc: BinomCheck, the exact R·V sampler, and trend helpers."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certkit.mc import binom_check, clopper_pearson, loglog_slope, sample_rv, spearman_trend


@given(st.integers(1, 500), st.data())
def test_clopper_pearson_contains_the_estimate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = clopper_pearson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_binom_check_protocol():
    assert binom_check(0, 10, 0.01).passed and binom_check(0, 10, 0.01).p_lo == 0.0
    assert not binom_check(60, 1000, 0.01).passed  # 6% observed vs claimed 1%
    assert binom_check(12, 1000, 0.01).passed       # compatible with 1%
    with pytest.raises(ValueError, match="failures == 5, must be <= trials == 3"):
        binom_check(5, 3, 0.1)
    with pytest.raises(ValueError, match="delta == 1.5"):
        binom_check(0, 3, 1.5)


def test_sample_rv_matches_the_covariance_even_for_singular_gram():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 1))
    V = np.hstack([v, v, np.eye(5)[:, :1]])  # repeated column: VᵀV singular
    n, g = 3, 2.0
    draws = sample_rv(V, n, g, size=40_000, seed=1)  # (size, n, |T|)
    rows = draws.reshape(-1, V.shape[1])
    cov = np.cov(rows, rowvar=False)
    want = (g / n) * V.T @ V
    assert np.allclose(cov, want, atol=0.03 * np.abs(want).max())
    # the reference: explicit R draws
    R = rng.normal(scale=math.sqrt(g / n), size=(20_000, n, 5))
    assert np.allclose(np.cov((R @ V).reshape(-1, 3), rowvar=False), want,
                       atol=0.03 * np.abs(want).max())


def test_loglog_slope_and_spearman():
    x = np.repeat([64, 128, 256, 512, 1024], 5)
    y = 3.0 * x**-0.5 * np.exp(np.random.default_rng(0).normal(scale=0.05, size=x.size))
    est = loglog_slope(x, y, seed=0)
    assert est.ci_low < -0.5 < est.ci_high and abs(est.slope + 0.5) < 0.05
    assert spearman_trend(x, y) < -0.8
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2, 3], [1, 0, 1])
