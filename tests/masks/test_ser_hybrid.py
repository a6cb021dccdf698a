"""SER (ALGORITHMS §5) and the Hybrid Magnitude–SER schedule (§6): exact counts, determinism,
cumulative masks, the prune–restore split of M-Thm 5.5 and the fine-tuning callback."""

import copy

import pytest
import torch

import certkit
import certkit.masks.hybrid as hybrid_mod
import certkit.masks.ser as ser_mod
from certkit.masks import MaskSet, build_masks, masked_finetune_step, n_prune_for_sparsity
from certkit.masks.hybrid import DEFAULT_GRID, hybrid_schedule
from certkit.masks.ser import SERMaskSet, seb_layer_weights, ser_regime, ser_split, ser_step

assert hybrid_mod.hybrid_schedule is hybrid_schedule  # imports register "ser", "hybrid"


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 24), torch.nn.ReLU(),
        torch.nn.Linear(24, 5),
    )


def _calib(n=2, seed=1, labels=False):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(8, 16, generator=g) for _ in range(n)]
    if labels:
        return [(x, torch.randint(0, 5, (8,), generator=g)) for x in xs]
    return xs


def _pruned_sets(ms):
    return {n: ~m for n, m in ms.masks.items()}


def _exact(ms, s):
    return ms.n_pruned == n_prune_for_sparsity(s, ms.n_total)


# ------------------------------------------------------------------------------ SER
@pytest.mark.parametrize("calibrated", [False, True])
def test_ser_exact_count_every_grid_point(calibrated):
    net = _mlp()
    cal = _calib() if calibrated else None
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for s in DEFAULT_GRID:
        ms = build_masks(net, "ser", sparsity=s, calibration=cal)
        assert isinstance(ms, SERMaskSet) and ms.method == "ser"
        assert _exact(ms, s), (s, ms.n_pruned)
        p = ms.params
        assert p["estimate"] == ("phase_a" if calibrated else "magnitude")
        assert p["n_pruned"] == ms.n_pruned
        assert p["n_restored"] == p["n_overpruned"] - p["n_pruned"] > 0
        assert p["n_restored"] <= p["n_reservoir"]
        assert int(sum(ms.restored()[n].sum() for n in ms.names)) == p["n_restored"]
    # the builder never modifies the model
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_ser_deterministic_with_phase_a():
    net = _mlp()
    a = build_masks(net, "ser", sparsity=0.4, calibration=_calib(labels=True))
    b = build_masks(net, "ser", sparsity=0.4, calibration=_calib(labels=True))
    assert a.same_masks(b) and a.params == b.params
    assert a.params["phase_a"]["n_batches"] == 2


def test_ser_options_recorded_and_exact():
    net = _mlp()
    cal = _calib()
    for kw in ({"rank": "divide"}, {"reservoir": "all_zeros"}, {"overprune": "multiplicative"},
               {"phase_a_init": "original"}, {"restore_fraction": 0.1},
               {"beta": 2.0, "s_d": 0.9}):
        ms = build_masks(net, "ser", sparsity=0.45, calibration=cal, **kw)
        assert _exact(ms, 0.45)
        rec = {**ms.params["regime"], **ms.params, "phase_a_init": ms.params["phase_a"]["init"]}
        assert all(rec[k] == v for k, v in kw.items())


def test_ser_without_restoration_and_beta0_is_global_magnitude():
    net = _mlp()
    mag = build_masks(net, "magnitude", sparsity=0.5)
    ms = build_masks(net, "ser", sparsity=0.5, restore_fraction=0.0, beta=0.0)
    assert ms.same_masks(mag) and ms.params["n_restored"] == 0


def test_seb_layer_weights_formula():
    sp = {"a": 1.0, "b": 3.0, "blocks.0.attn.qkv": 2.0}
    w = seb_layer_weights(["a", "b", "blocks.0.attn.qkv", "missing"], sp, 0.1, beta=0.5,
                          s_d=0.3)
    z = (3.0 - 2.0) / (2.0 / 3.0) ** 0.5
    d = 1 - 0.1 / 0.3
    assert w["b"] == pytest.approx(1 + 0.5 * d * z)
    assert w["a"] == pytest.approx(1 - 0.5 * d * z)
    assert w["missing"] == 1.0 and w["blocks.0.attn.qkv"] == 1.0
    w2 = seb_layer_weights(["a", "b", "blocks.0.attn.qkv"], sp, 0.0, beta=10.0, s_d=0.3,
                           beta_attn=0.0, beta_mlp=0.0)
    assert w2["a"] == pytest.approx(max(0.1, 1 - 10 * z))  # floor, β_other = β
    assert ser_regime(0.2)["beta"] == 0.5 and ser_regime(0.65)["beta_mlp"] == 2.0


def test_ser_cumulative_from_previous_masks():
    net = _mlp()
    prev = build_masks(net, "magnitude", sparsity=0.2)
    ms = ser_step(net, [n for n in prev.names], 0.3, previous=prev)
    assert _exact(ms, 0.3)
    for n in ms.names:
        assert not (ms[n] & ~prev[n]).any()  # earlier pruned entries stay pruned


# ------------------------------------------------------------------------------ split
def test_ser_split_is_disjoint_decomposition_and_certificate_accepts():
    net = _mlp()
    ms = build_masks(net, "ser", sparsity=0.5, calibration=_calib())
    split = ser_split(net, ms)
    g = torch.Generator().manual_seed(5)
    n_q = 0
    for name, sp in split.items():
        W = net.get_submodule(name).weight.detach()
        S, Q, P = sp.S, sp.Q, sp.P
        assert torch.equal(S + Q + P, W)
        for X, Y in ((S, Q), (S, P), (Q, P)):
            assert not ((X != 0) & (Y != 0)).any()
        restored = ms.reservoir[name] & ms[name]
        assert torch.equal(Q[restored], W[restored])  # original values (Trap T14)
        assert not Q[~restored].any()
        assert not P[ms[name]].any() and not S[~ms[name] | ms.reservoir[name]].any()
        n_q += int(restored.sum())
        V = torch.randn(6, W.shape[1], generator=g, dtype=torch.float64)
        budget = certkit.compute_budget(P, V, 1.0)
        cert = certkit.prune_restore_certificate(S, Q, P, budget, 1e-3, 1e-2, A=W)
        assert cert is not None
    assert n_q == ms.params["n_restored"] > 0
    # a split whose Q carries other values is rejected by the certificate (T14)
    name = next(n for n in split if split[n].Q.any())
    bad = split[name].Q * 2
    with pytest.raises(ValueError):
        certkit.prune_restore_certificate(split[name].S, bad, split[name].P, 0.0, 0.0, 0.0,
                                          A=net.get_submodule(name).weight.detach())


def test_ser_split_needs_reservoir(tmp_path):
    net = _mlp()
    ms = build_masks(net, "ser", sparsity=0.3)
    ms.save(tmp_path / "m.safetensors")
    loaded = MaskSet.load(tmp_path / "m.safetensors")
    assert loaded.same_masks(ms)
    with pytest.raises(ValueError, match="reservoir"):
        ser_split(net, loaded)
    split = ser_split(net, loaded, reservoir=ms.reservoir)
    assert all(torch.equal(split[n].Q, ser_split(net, ms)[n].Q) for n in ms.names)


def test_ser_on_tiny_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                            patch_size=8, depth=2, num_classes=10).eval()
    cal = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))]
    ms = build_masks(vit, "ser", sparsity=0.35, calibration=cal)
    assert _exact(ms, 0.35) and "patch_embed.proj" in ms.names
    assert ms.params["sigma_plus"]  # σ₊ fitted for the ViT Linears
    split = ser_split(vit, ms)
    W = vit.get_submodule("patch_embed.proj").weight.detach()
    sp = split["patch_embed.proj"]
    assert torch.equal(sp.S + sp.Q + sp.P, W)


# ------------------------------------------------------------------------------ hybrid
def test_hybrid_exact_cumulative_monotone_and_deterministic():
    net = _mlp()
    cal = _calib()
    a = hybrid_schedule(net, calibration=cal)
    b = hybrid_schedule(net, calibration=cal)
    assert len(a) == len(DEFAULT_GRID) == 14
    stages = [m.params["stage"] for m in a]
    assert stages == ["magnitude"] * 4 + ["ser"] * 10
    for i, (ms, s) in enumerate(zip(a, DEFAULT_GRID, strict=True)):
        assert ms.method == "hybrid" and _exact(ms, s) and ms.params["cycle"] == i
        assert ms.same_masks(b[i])
        if i:
            for n in ms.names:  # pruned set grows
                assert not (ms[n] & ~a[i - 1][n]).any()


def test_build_masks_hybrid_matches_schedule():
    net = _mlp()
    sched = hybrid_schedule(net, grid=(0.1, 0.2, 0.3, 0.4), switch_at=0.25)
    ms = build_masks(net, "hybrid", sparsity=0.4, grid=(0.1, 0.2, 0.3, 0.4), switch_at=0.25)
    assert ms.same_masks(sched[-1]) and ms.params["stage"] == "ser"
    off = build_masks(net, "hybrid", sparsity=0.33)
    assert _exact(off, 0.33) and off.params["grid"][-1] == 0.33
    assert build_masks(net, "hybrid", sparsity=0.1).params["stage"] == "magnitude"


def test_hybrid_finetune_callback_and_frozen_masks():
    net = _mlp()
    dense = copy.deepcopy(net)
    cal = _calib(labels=True)
    calls = []

    def finetune(model, maskset, cycle):
        assert model is net
        for n in maskset.names:  # masks applied before the callback
            assert not model.get_submodule(n).weight[~maskset[n]].any()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
        for x, y in cal:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            masked_finetune_step(model, maskset, opt, loss, max_grad_norm=1.0)
        for n in maskset.names:  # pruned weights stay exactly zero after the step
            assert not model.get_submodule(n).weight[~maskset[n]].any()
        calls.append((cycle, maskset))

    grid = (0.1, 0.2, 0.3, 0.5)
    out = hybrid_schedule(net, grid=grid, finetune=finetune, calibration=cal,
                          ser_params={"record_split": True})
    assert [c for c, _ in calls] == [0, 1, 2, 3]
    assert all(ms is out[c] for c, ms in calls)
    for ms, s in zip(out, grid, strict=True):
        assert _exact(ms, s) and ms.params["finetuned"]
    for n in out[-1].names:
        assert not net.get_submodule(n).weight[~out[-1][n]].any()
    # the recorded split of an SER cycle is an exact decomposition of that cycle's input,
    # with Q holding the input's values even though phase-A values were deployed
    ms = out[2]
    assert isinstance(ms, SERMaskSet) and ms.split is not None
    assert ms.params["restore_value"] == "phase_a"
    for n, sp in ser_split(net, ms).items():
        for X, Y in ((sp.S, sp.Q), (sp.S, sp.P), (sp.Q, sp.P)):
            assert not ((X != 0) & (Y != 0)).any()
        assert not sp.Q[~(ms.reservoir[n] & ms[n])].any()
    assert not all(torch.equal(p, q) for p, q in zip(net.parameters(), dense.parameters(),
                                                     strict=True))


def test_hybrid_drop_threshold_variant():
    net = _mlp()
    scores = iter([90.0, 89.9, 89.5, 89.0, 88.0])  # baseline, then after each magnitude cycle

    out = hybrid_schedule(net, grid=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3), drop_threshold=0.7,
                          evaluate=lambda m: next(scores))
    assert [m.params["stage"] for m in out] == ["magnitude"] * 3 + ["ser"] * 3
    assert out[2].params["score"] == 89.0 and out[2].params["reference_score"] == 90.0
    assert all(_exact(m, s) for m, s in zip(out, (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
                                            strict=True))


# ------------------------------------------------------------------------------ bad input
def test_bad_input():
    net = _mlp()
    with pytest.raises(ValueError, match="sparsity"):
        build_masks(net, "ser", sparsity=1.0)
    with pytest.raises(ValueError, match="sparsity"):
        build_masks(net, "ser")
    with pytest.raises(ValueError, match="pattern"):
        build_masks(net, "ser", sparsity=0.5, pattern="2:4")
    with pytest.raises(ValueError, match="rank"):
        build_masks(net, "ser", sparsity=0.5, rank="up")
    with pytest.raises(ValueError, match="reservoir"):
        build_masks(net, "ser", sparsity=0.5, reservoir="everything")
    with pytest.raises(ValueError, match="calibration"):
        build_masks(net, "ser", sparsity=0.5, estimate="phase_a")
    with pytest.raises(ValueError, match="calibration"):
        build_masks(net, "ser", sparsity=0.5, calibration=[])
    with pytest.raises(ValueError, match="restore_fraction"):
        build_masks(net, "ser", sparsity=0.5, restore_fraction=-0.1)
    with pytest.raises(ValueError, match="empty"):
        ser_step(net, [], 0.5)
    prev = build_masks(net, "magnitude", sparsity=0.6)
    with pytest.raises(ValueError, match="cumulative"):
        ser_step(net, prev.names, 0.5, previous=prev)
    with pytest.raises(ValueError, match="increasing"):
        hybrid_schedule(net, grid=(0.2, 0.1))
    with pytest.raises(ValueError, match="grid"):
        hybrid_schedule(net, grid=())
    with pytest.raises(ValueError, match="grid"):
        hybrid_schedule(net, grid=(0.1, 1.0))
    with pytest.raises(ValueError, match="evaluate"):
        hybrid_schedule(net, drop_threshold=0.7)
    with pytest.raises(ValueError, match="reference"):
        hybrid_schedule(net, drop_threshold=0.7, evaluate=lambda m: 1.0, reference="best")
    with pytest.raises(ValueError, match="previous"):
        hybrid_schedule(net, ser_params={"previous": None})
    with pytest.raises(TypeError, match="finetune"):
        hybrid_schedule(net, finetune=3)
    with pytest.raises(ValueError, match="fine-tunes"):
        build_masks(net, "hybrid", sparsity=0.3, finetune=lambda *a: None)
    with pytest.raises(ValueError, match="switch_at"):
        hybrid_schedule(net, switch_at=1.5)
    assert ser_mod.SER_DEFAULTS["restore_fraction"] == 0.03
