"""Public surface of certkit.rmt: exports, registry entries, function signatures (contract)."""

from __future__ import annotations

import inspect

import certkit.rmt as rmt

NOT_RESULTS = {"ENTRY_LAWS", "MP_PARAMETERS", "MPFit"}


def test_all_exports_exist_and_are_registered():
    for name in rmt.__all__:
        obj = getattr(rmt, name)
        if name in NOT_RESULTS:
            continue
        assert getattr(obj, "__certkit_results__", ()), f"{name} lacks @implements"
        assert obj.__doc__ and "Implements" in obj.__doc__, name


def _params(fn):
    P = inspect.Parameter
    out = []
    for p in inspect.signature(fn).parameters.values():
        kind = "kw" if p.kind is P.KEYWORD_ONLY else "pos"
        default = "<required>" if p.default is P.empty else p.default
        out.append((p.name, kind, default))
    return out


def test_contract_signatures():
    assert _params(rmt.mp_pdf) == [("x", "pos", "<required>"), ("c", "pos", "<required>"),
                                   ("sigma2", "pos", 1.0)]
    assert _params(rmt.mp_cdf) == _params(rmt.mp_pdf)
    assert _params(rmt.mp_edges) == [("c", "pos", "<required>"), ("sigma2", "pos", 1.0)]
    assert [p[0] for p in _params(rmt.mp_moments)] == ["k", "c", "sigma2"]
    assert _params(rmt.sample_mp) == [("N", "pos", "<required>"), ("M", "pos", "<required>"),
                                      ("sigma2", "pos", 1.0), ("seed", "kw", None),
                                      ("law", "kw", "gaussian")]
    assert _params(rmt.fit_mp) == [("W", "pos", "<required>"), ("alpha", "kw", 0.25),
                                   ("beta", "kw", 0.8), ("spike_level", "kw", 0.01),
                                   ("conv", "kw", "unfold"), ("return_spectrum", "kw", False)]
    assert _params(rmt.inverse_bbp)[:3] == [("s", "pos", "<required>"),
                                            ("noise_variance", "kw", "<required>"),
                                            ("shape", "kw", None)]
    assert _params(rmt.bbp_outlier) == [("theta", "pos", "<required>"),
                                        ("noise_variance", "kw", "<required>"),
                                        ("shape", "kw", None)]
    assert rmt.mp_edges(1.0, 1.0) == (0.0, 4.0)


def test_fit_mp_return_spectrum_matches_the_fit():
    import numpy as np
    import torch

    W = torch.randn(96, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    fit, ev = rmt.fit_mp(W, return_spectrum=True)
    assert fit == rmt.fit_mp(W)
    assert ev.shape == (1, 48)
    ref = np.sort(np.linalg.eigvalsh((W.T @ W).numpy() / 96))
    np.testing.assert_allclose(ev[0], ref, rtol=1e-10, atol=1e-12)
