"""Classical RMT (ALGORITHMS §3) and SEB (§4) masks: exact counts, determinism, formulas."""

import math

import numpy as np
import pytest
import torch

import certkit.masks.rmt as rmt  # noqa: F401  (registers "rmt")
import certkit.masks.seb as seb  # noqa: F401  (registers "seb")
from certkit.masks import build_masks, global_magnitude_masks, validate_masks
from certkit.masks.rmt import (
    allocate_counts,
    gavish_donoho_factor,
    rmt_masks,
    rmt_reconstruct,
    spike_reconstruction,
)
from certkit.masks.seb import hill_alpha, seb_masks, seb_regime, seb_signals, seb_weights


def _planted(M=64, N=128, strengths=(8.0, 6.0, 5.0), noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = len(strengths)
    U = torch.linalg.qr(torch.randn(M, k, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(N, k, generator=g, dtype=torch.float64))[0]
    S = (U * torch.tensor(strengths, dtype=torch.float64)) @ V.T
    W = S + noise * torch.randn(M, N, generator=g, dtype=torch.float64)
    return W, S, U, V


def _weights(seed=0, scales=(1.0, 2.0, 0.5)):
    g = torch.Generator().manual_seed(seed)
    shapes = [(48, 32), (32, 64), (40, 40)]
    return {f"l{i}": sc * torch.randn(sh, generator=g) for i, (sh, sc) in
            enumerate(zip(shapes, scales, strict=True))}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 24, 3)
        self.fc1 = torch.nn.Linear(24, 64)
        self.fc2 = torch.nn.Linear(64, 48)
        self.head = torch.nn.Linear(48, 5)  # too small for the MP fit
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))

    def forward(self, x):
        x = self.conv(x).mean(dim=(2, 3))
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


# ------------------------------------------------------------------ rmt: dense reconstruction
def test_spike_reconstruction_recovers_planted_subspace():
    W, S, U, V = _planted()
    rec = spike_reconstruction(W, threshold="spike")
    assert rec.kind == "dense_reconstruction"
    assert rec.rank == 3 and rec.fit is not None and rec.fit.n_spikes == 3
    Uh, _, Vh = torch.linalg.svd(rec.weight, full_matrices=False)
    # principal angles: projector distance of the recovered vs planted subspaces
    for A, B in ((Uh[:, :3], U), (Vh[:3].T, V)):
        # Wedin: sin θ ≲ ‖noise‖_op / s_3 ≈ 0.97 / 5 ≈ 0.2
        assert torch.linalg.matrix_norm(A @ A.T - B @ B.T, ord=2) < 0.15
    err = float((rec.weight - S).norm() / S.norm())
    assert err < 0.15 and err < 0.5 * float((W - S).norm() / S.norm())
    # removes exactly the bulk: W - W_hat = the dropped singular triplets (Eckart–Young)
    s = torch.linalg.svdvals(W)
    assert math.isclose(float((W - rec.weight).norm() ** 2), float((s[3:] ** 2).sum()),
                        rel_tol=1e-9)
    assert math.isclose(rec.bulk_energy_fraction,
                        float((s[3:] ** 2).sum() / (s ** 2).sum()), rel_tol=1e-9)
    # every kept singular value is above the edge, every dropped one below
    assert all(v > rec.threshold for v in rec.kept_singular_values)
    assert float(s[3]) <= rec.threshold


def test_sigma_plus_rule_keeps_at_least_the_spikes_and_conv_shape():
    W, S, _, _ = _planted()
    rec = spike_reconstruction(W)  # sigma_plus (TW-lowered edge): may keep a bulk value
    assert rec.rank >= 3 and rec.threshold == pytest.approx(rec.fit.sigma_plus)
    assert float((rec.weight - S).norm() / S.norm()) < 0.2
    gd = spike_reconstruction(W, threshold="gavish_donoho")
    assert gd.rank == 3
    assert gavish_donoho_factor(1.0) == pytest.approx(4 / math.sqrt(3))
    conv = torch.randn(32, 4, 3, 3, dtype=torch.float32)
    rc = spike_reconstruction(conv)
    assert rc.weight.shape == conv.shape and rc.weight.dtype == torch.float32
    assert rc.to_dict()["kind"] == "dense_reconstruction"


def test_spike_reconstruction_small_layer_fallback_and_errors():
    W = torch.randn(5, 12)
    rec = spike_reconstruction(W)
    assert rec.fallback and rec.fit is None and torch.equal(rec.weight, W)
    with pytest.raises(ValueError, match="too small"):
        spike_reconstruction(W, on_unfit="raise")
    with pytest.raises(ValueError, match="threshold"):
        spike_reconstruction(torch.randn(40, 40), threshold="median")
    with pytest.raises(ValueError, match="on_unfit"):
        spike_reconstruction(torch.randn(40, 40), on_unfit="skip")


def test_rmt_reconstruct_model_leaves_weights_unchanged():
    net = Net()
    before = {n: p.clone() for n, p in net.state_dict().items()}
    recs = rmt_reconstruct(net)
    assert set(recs) == {"conv", "fc1", "fc2", "head"}
    assert recs["head"].fallback is not None
    assert all(torch.equal(before[n], p) for n, p in net.state_dict().items())


# ------------------------------------------------------------------ rmt: mask form
def test_allocate_counts_exact_and_deterministic():
    sizes = [7, 13, 29, 1]
    for s in np.linspace(0, 0.99, 23):
        n = math.floor(s * sum(sizes) + 0.5)
        c = allocate_counts(sizes, [s] * 4, n)
        assert sum(c) == n and all(0 <= a <= b for a, b in zip(c, sizes, strict=True))
    assert allocate_counts([10, 10], [0.5, 0.5], 11) == [6, 5]  # tie -> earlier layer
    with pytest.raises(ValueError, match="n_total"):
        allocate_counts([3], [0.5], 4)


@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("s", [0.0, 0.3, 0.55, 0.9])
def test_rmt_masks_exact_counts(scope, s):
    ws = _weights()
    masks, rep = rmt_masks(ws, s, scope=scope)
    P = sum(w.numel() for w in ws.values())
    assert sum(int((~m).sum()) for m in masks.values()) == math.floor(s * P + 0.5)
    if scope == "layerwise":
        for n, w in ws.items():
            assert abs(rep["layers"][n]["n_pruned"] - s * w.numel()) <= 1
    masks2, _ = rmt_masks(ws, s, scope=scope)
    assert all(torch.equal(masks[n], masks2[n]) for n in ws)


def test_rmt_mask_keeps_signal_entries_on_planted_matrix():
    W, S, _, _ = _planted(noise=0.05)
    masks, rep = rmt_masks({"w": W}, 0.5, threshold="spike")
    assert rep["layers"]["w"]["rank"] == 3
    # the kept half is exactly the half with the largest |W_hat|
    rec = spike_reconstruction(W, threshold="spike").weight.abs()
    kept, dropped = rec[masks["w"]], rec[~masks["w"]]
    assert float(kept.min()) >= float(dropped.max())
    # it removes less of the planted signal than plain magnitude at the same count
    mag = global_magnitude_masks({"w": W}, 0.5)["w"]
    assert int((~masks["w"]).sum()) == int((~mag).sum())
    assert float(S[~masks["w"]].norm()) < 0.8 * float(S[~mag].norm())


def test_rmt_rank_zero_layer_falls_back_to_magnitude_order():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(40, 80, generator=g, dtype=torch.float64)  # pure noise
    masks, rep = rmt_masks({"w": W}, 0.4, threshold="spike")
    assert rep["layers"]["w"]["rank"] == 0
    ref = global_magnitude_masks({"w": W}, 0.4)["w"]
    assert torch.equal(masks["w"], ref)


# ------------------------------------------------------------------ seb: formulas
def test_seb_weights_hand_example():
    sig = {"a.attn.qkv": 1.0, "b.mlp.fc1": 2.0, "c": 3.0, "d": None}
    # mean 2, population std sqrt(2/3); d = 1 - 0.2/0.5 = 0.6
    w = seb_weights(sig, 0.2, beta=1.0, s_d=0.5)
    z = 1.0 / math.sqrt(2 / 3)
    assert w["a.attn.qkv"] == pytest.approx(1 - 0.6 * z)
    assert w["b.mlp.fc1"] == pytest.approx(1.0)
    assert w["c"] == pytest.approx(1 + 0.6 * z)
    assert w["d"] == 1.0  # missing -> neutral z = 0
    # floor 0.1 and layer-type betas (attn 2.0, mlp 0.5, other beta)
    w2 = seb_weights(sig, 0.0, beta=3.0, s_d=0.5, beta_attn=2.0, beta_mlp=0.5)
    assert w2["a.attn.qkv"] == pytest.approx(max(0.1, 1 - 2.0 * z))
    assert w2["a.attn.qkv"] == 0.1
    assert w2["c"] == pytest.approx(1 + 3.0 * z)
    # p exponent, s >= s_d, constant signal, repository "zero" treatment of missing
    assert seb_weights(sig, 0.25, beta=1.0, s_d=0.5, p=2)["c"] == pytest.approx(1 + 0.25 * z)
    assert set(seb_weights(sig, 0.6, beta=1.0, s_d=0.5).values()) == {1.0}
    assert set(seb_weights({"x": 2.0, "y": 2.0}, 0.1, beta=1, s_d=0.5).values()) == {1.0}
    wz = seb_weights(sig, 0.2, beta=1.0, s_d=0.5, missing="zero")
    xs = np.array([1.0, 2.0, 3.0, 0.0])
    assert wz["d"] == pytest.approx(1 + 0.6 * (0 - xs.mean()) / xs.std())


def test_seb_regimes_and_hill_alpha():
    assert seb_regime(0.05)["signal"] == "alpha" and seb_regime(0.2)["s_d"] == 0.3
    assert (seb_regime(0.3)["beta"], seb_regime(0.3)["s_d"]) == (1.0, 0.5)
    assert (seb_regime(0.5)["beta"], seb_regime(0.5)["s_d"]) == (1.25, 0.7)
    r = seb_regime(0.65)
    assert (r["beta"], r["s_d"], r["beta_attn"], r["beta_mlp"]) == (1.5, 0.85, 1.0, 2.0)
    # Hill: power law e_i = i^-2 on the top -> closed form of §1.8
    s = np.sqrt(np.arange(1, 101, dtype=float) ** -2.0)
    e = np.sort(s ** 2)[::-1]
    ref = 1 + 1 / np.mean(np.log(e[:20]) - np.log(e[20]))
    assert hill_alpha(s) == pytest.approx(ref)
    assert hill_alpha([1.0, 2.0]) == 99.0
    with pytest.raises(ValueError):
        hill_alpha([1.0, -1.0, 2.0])


def test_seb_larger_sigma_plus_gets_higher_sparsity():
    # same entry distribution shape, one layer with a larger MP edge (wider): spec §4.2
    # w > 1 => more pruning; compare with plain global magnitude on the same weights
    ws = _weights(scales=(1.0, 1.0, 1.0))
    sig = seb_signals(ws)
    big = max(sig, key=sig.get)
    small = min(sig, key=sig.get)
    m_seb, rep = seb_masks(ws, 0.3, signals=sig, regime=None, beta=1.0, s_d=0.5)
    m_mag = global_magnitude_masks(ws, 0.3)
    sp = {n: v["sparsity"] for n, v in rep["layers"].items()}
    mag = {n: float((~m).sum()) / m.numel() for n, m in m_mag.items()}
    assert rep["layers"][big]["w"] > 1 > rep["layers"][small]["w"]
    assert sp[big] > mag[big] and sp[small] < mag[small]
    # reversing beta reverses the direction
    _, rev = seb_masks(ws, 0.3, signals=sig, regime=None, beta=-1.0, s_d=0.5)
    assert rev["layers"][big]["sparsity"] < mag[big]


@pytest.mark.parametrize("s", [0.0, 0.1, 0.35, 0.5, 0.7, 0.95])
def test_seb_exact_global_count_and_determinism(s):
    ws = _weights()
    m1, rep = seb_masks(ws, s)
    m2, _ = seb_masks(ws, s)
    P = sum(w.numel() for w in ws.values())
    n = math.floor(s * P + 0.5)
    assert sum(int((~m).sum()) for m in m1.values()) == n
    assert sum(v["n_pruned"] for v in rep["layers"].values()) == n
    assert all(torch.equal(m1[k], m2[k]) for k in ws)


def test_seb_beta_zero_is_global_magnitude():
    ws = _weights()
    m, _ = seb_masks(ws, 0.45, regime=None, beta=0.0, s_d=0.5)
    ref = global_magnitude_masks(ws, 0.45)
    assert all(torch.equal(m[k], ref[k]) for k in ws)


def test_seb_bad_input():
    ws = _weights()
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="sparsity"):
            seb_masks(ws, bad)
        with pytest.raises(ValueError, match="sparsity"):
            rmt_masks(ws, bad)
    with pytest.raises(ValueError, match="s_d"):
        seb_weights({"a": 1.0}, 0.1, beta=1.0, s_d=0.0)
    with pytest.raises(ValueError, match="beta_attn"):
        seb_weights({"a": 1.0}, 0.1, beta=1.0, s_d=0.5, beta_attn=1.0)
    with pytest.raises(ValueError, match="signal"):
        seb_masks(ws, 0.3, signal="kurtosis")
    with pytest.raises(ValueError, match="beta and s_d"):
        seb_masks(ws, 0.3, regime=None)
    with pytest.raises(ValueError, match="not in the selection"):
        seb_masks(ws, 0.3, signals={"nope": 1.0})
    with pytest.raises(ValueError, match="scope"):
        rmt_masks(ws, 0.3, scope="per_row")


# ------------------------------------------------------------------ build_masks
@pytest.mark.parametrize("method", ["rmt", "seb"])
def test_build_masks_hand_model(method):
    net = Net()
    ms = build_masks(net, method, sparsity=0.6)
    validate_masks(ms, net)
    P = ms.n_total
    assert ms.n_pruned == math.floor(0.6 * P + 0.5)
    assert ms.achieved_sparsity == pytest.approx(ms.n_pruned / P)
    assert set(ms.masks) == {"conv", "fc1", "fc2", "head"}
    calib = [torch.randn(2, 3, 8, 8)]
    again = build_masks(net, method, calibration=calib, sparsity=0.6)  # ignored (data-free)
    assert again.same_masks(ms)
    with pytest.raises(ValueError, match="pattern"):
        build_masks(net, method, pattern="2:4")
    with pytest.raises(ValueError, match="sparsity"):
        build_masks(net, method)
    with pytest.raises(ValueError, match="sparsity"):
        build_masks(net, method, sparsity=1.0)
    if method == "rmt":
        assert "head" in ms.params["fallback"]
    else:
        assert ms.params["layers"]["head"]["signal"] is None
        assert ms.params["layers"]["head"]["w"] == 1.0
        assert ms.params["layers"]["fc1"]["type"] == "other"  # literal §A.1 rule (".fc")


@pytest.mark.parametrize("method", ["rmt", "seb"])
def test_build_masks_tiny_vit(method, tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                          depth=1, num_classes=10).eval()
    ms = build_masks(m, method, sparsity=0.65)
    validate_masks(ms, m)
    assert ms.n_pruned == math.floor(0.65 * ms.n_total + 0.5)
    if method == "seb":
        lay = ms.params["layers"]
        assert lay["blocks.0.attn.qkv"]["beta"] == 1.0 and lay["blocks.0.mlp.fc1"]["beta"] == 2.0
        assert lay["patch_embed.proj"]["beta"] == 1.5
    from certkit.masks import MaskSet

    p = ms.save(tmp_path / "m.safetensors")
    assert MaskSet.load(p).same_masks(ms)
