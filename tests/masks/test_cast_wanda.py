"""Calibration statistics, Wanda and CAST k:n (ALGORITHMS §7.1–7.7, §7.9; issue 4)."""

import itertools
import math
import os

import pytest
import torch

import certkit.masks.calibration as calibration
import certkit.masks.cast  # noqa: F401  (registers "cast")
import certkit.masks.wanda  # noqa: F401  (registers "wanda")
from certkit.factorize import layer_inputs
from certkit.masks import (
    PAPER_PATTERNS,
    build_masks,
    exact_prune_mask,
    format_pattern,
    magnitude_mask,
    nm_ineligibility,
    nm_magnitude_mask,
    select_layers,
    validate_masks,
    validate_nm,
)
from certkit.masks.calibration import collect_input_stats
from certkit.masks.cast import (
    candidate_patterns,
    cast_select,
    cast_values,
    group_cost,
    materialize,
    restoration_split,
)
from certkit.masks.wanda import wanda_mask

os.environ.setdefault("HF_HUB_OFFLINE", "1")
F64 = torch.float64


# ---------------------------------------------------------------------------- models
class TokenConvNet(torch.nn.Module):
    """conv (im2col rows) -> tokens -> Linear (token rows)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.lin = torch.nn.Linear(8, 8)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, P, 8)
        return self.lin(torch.relu(t)).mean(1)


class ConvNet(torch.nn.Module):
    """stem (ineligible width 27) -> 3×3 conv -> 1×1 conv -> depthwise -> head."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(2)
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1)  # width 144
        self.pw = torch.nn.Conv2d(16, 32, 1)                        # width 16
        self.dw = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.head = torch.nn.Linear(32, 16)
        self.unused = torch.nn.Linear(16, 16)                       # never runs
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.dw(torch.relu(self.pw(x))))
        return self.head(x.mean(dim=(2, 3)))


def _calib(shape, n_batches=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n_batches)]


@pytest.fixture(scope="module")
def small_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2,
                             embed_dim=48, num_heads=3, num_classes=16,
                             pretrained=False).eval()


# ---------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("n", [4, 8])
def test_stats_equal_brute_force(monkeypatch, n):
    monkeypatch.setattr(calibration, "CHUNK_ROWS", 7)  # exercise the streaming chunks
    model = TokenConvNet().eval()
    batches = _calib((3, 3, 6, 6))
    stats = collect_input_stats(model, {"conv": model.conv, "lin": model.lin}, batches,
                                group_size=n)
    for name, module in (("conv", model.conv), ("lin", model.lin)):
        rows = torch.cat([layer_inputs(model, module, b) for b in batches]).to(F64)
        rows = rows.reshape(-1, rows.shape[-1])
        st = stats[name]
        assert st.n_rows == rows.shape[0] and st.calls == 2
        torch.testing.assert_close(st.sq_sum, (rows ** 2).sum(0), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(st.input_norm, rows.norm(dim=0), rtol=1e-12, atol=1e-12)
        G = rows.shape[1] // n  # conv width 27: trailing columns get no block
        xg = rows[:, : G * n].reshape(-1, G, n)
        ref = torch.einsum("rga,rgb->gab", xg, xg) / rows.shape[0]
        torch.testing.assert_close(st.group_cov, ref, rtol=1e-12, atol=1e-12)


def test_stats_options_and_errors():
    model = TokenConvNet()
    batches = _calib((3, 3, 6, 6), n_batches=3)
    st = collect_input_stats(model, ["lin"], batches, rows_per_call=5, max_batches=2)["lin"]
    assert st.n_rows == 10 and st.calls == 2
    with pytest.raises(ValueError, match="calibration is None"):
        collect_input_stats(model, ["lin"], None)
    with pytest.raises(ValueError, match="no batch"):
        collect_input_stats(model, ["lin"], [])
    dw = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4))
    with pytest.raises(ValueError, match="groups"):
        collect_input_stats(dw, ["0"], [torch.randn(1, 4, 5, 5)])
    assert model.training  # mode restored after the eval-mode capture


# ---------------------------------------------------------------------------- solver
def _brute(u, C, k, n, src, alpha):
    """Direct enumeration of §7.5-7.7 (float64, full Hamming prior with the per-cell mean)."""
    cands = [torch.tensor([t in c for t in range(n)]) for c in itertools.combinations(range(n), k)]
    U = u.reshape(u.shape[0], -1, n)
    S = src.reshape(u.shape[0], -1, n)
    out = torch.zeros(U.shape, dtype=torch.bool)
    for i in range(U.shape[0]):
        for g in range(U.shape[1]):
            costs = []
            for m in cands:
                r = (~m).to(F64) * U[i, g]
                costs.append(float(r @ C[g] @ r))
            cbar = max(sum(costs) / len(costs), 1e-12)
            tot = [c + alpha * cbar * float((m != S[i, g]).sum())
                   for c, m in zip(costs, cands, strict=True)]
            out[i, g] = cands[min(range(len(tot)), key=tot.__getitem__)]
    return out.reshape(u.shape)


@pytest.mark.parametrize("k,n", PAPER_PATTERNS)
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_gemm_solver_equals_brute_force(k, n, alpha):
    g = torch.Generator().manual_seed(10 * n + k)
    rows = 2 if n >= 12 else 3
    u = torch.randn(rows, 2 * n, generator=g, dtype=F64)
    X = torch.randn(40, 2 * n, generator=g, dtype=F64)
    C = torch.einsum("ra,rb->ab", X, X).reshape(1, 2 * n, 2 * n) / 40
    C = torch.stack([C[0, :n, :n], C[0, n:, n:]])
    src = torch.rand(u.shape, generator=g) < 0.6
    mask, obj = cast_select(u, C, k, n, source_mask=src, alpha_ser=alpha, dtype=F64,
                            chunk_elems=5000)
    validate_nm(mask, k, n)
    assert torch.equal(mask, _brute(u, C, k, n, src, alpha))
    if alpha == 0:
        assert obj == pytest.approx(group_cost(u, mask, C), rel=1e-10, abs=1e-12)


def test_candidates_and_sampled_search():
    cand, exhaustive = candidate_patterns(2, 4)
    assert exhaustive and cand.tolist()[0] == [True, True, False, False] and len(cand) == 6
    assert [len(candidate_patterns(k, n)[0]) for k, n in PAPER_PATTERNS] == \
        [math.comb(n, k) for k, n in PAPER_PATTERNS]
    cand, exhaustive = candidate_patterns(16, 32, n_samples=300)
    assert not exhaustive and cand.shape == (300, 32) and bool((cand.sum(1) == 16).all())
    assert torch.equal(cand, candidate_patterns(16, 32, n_samples=300)[0])
    u = torch.randn(4, 64)
    C = torch.eye(32).expand(2, 32, 32).clone()
    mask, _ = cast_select(u, C, 16, 32, candidates=cand)
    validate_nm(mask, 16, 32)


def test_cast_objective_at_most_magnitude_on_random_layers():
    g = torch.Generator().manual_seed(3)
    for k, n in PAPER_PATTERNS:
        for _ in range(2):
            u = torch.randn(6, 3 * n, generator=g, dtype=F64)
            X = torch.randn(50, 3 * n, generator=g, dtype=F64) * torch.rand(3 * n, generator=g)
            X = X + 0.5 * X.roll(1, dims=1)  # correlated inputs
            xg = X.reshape(50, 3, n)
            C = torch.einsum("rga,rgb->gab", xg, xg) / 50
            mask, obj = cast_select(u, C, k, n, dtype=F64)
            mag = group_cost(u, nm_magnitude_mask(u, k, n), C)
            assert obj == pytest.approx(group_cost(u, mask, C), rel=1e-9)
            assert obj <= mag * (1 + 1e-12)
    # float32 default solver: still within rounding of the magnitude objective
    mask32, _ = cast_select(u.float(), C, k, n)
    assert group_cost(u, mask32, C) <= group_cost(u, nm_magnitude_mask(u, k, n), C) * (1 + 1e-5)


def test_fallback_is_topk_with_low_index_ties():
    u = torch.tensor([[1.0, -3.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    mask, obj = cast_select(u, None, 2, 4)
    assert mask.tolist() == [[True, True, False, False, True, True, False, False]] and obj == 0


# ---------------------------------------------------------------------------- CAST builder
@pytest.mark.parametrize("k,n", PAPER_PATTERNS)
def test_cast_every_pattern_small_vit(small_vit, k, n):
    pattern = format_pattern(k, n)
    calib = _calib((2, 3, 32, 32))
    ms = build_masks(small_vit, "cast", calibration=calib, pattern=pattern)
    validate_masks(ms, small_vit)
    for mask in ms.masks.values():
        validate_nm(mask, k, n)
    assert list(ms.params["skipped"]) == ["patch_embed.proj"]
    assert "head" in ms.masks and ms.params["fallback"] == []
    assert ms.achieved_sparsity == pytest.approx(1 - k / n)
    # CAST optimises its own objective: never above magnitude k:n on the same statistics
    stats = collect_input_stats(small_vit, {nm: small_vit.get_submodule(nm) for nm in ms.masks},
                                calib, group_size=n)
    for name in ms.masks:
        w = small_vit.get_submodule(name).weight.detach()
        cast_obj = group_cost(w, ms.masks[name], stats[name].group_cov)
        mag_obj = group_cost(w, nm_magnitude_mask(w, k, n), stats[name].group_cov)
        assert cast_obj <= mag_obj * (1 + 1e-5), name
        assert ms.params["objective"][name] == pytest.approx(cast_obj, rel=1e-4)


def test_cast_full_vit_tiny_2_4():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8,
                              pretrained=False).eval()
    ms = build_masks(model, "cast", calibration=_calib((2, 3, 32, 32), n_batches=1),
                     pattern="2:4", include_patch_embed=True)
    validate_masks(ms, model)
    assert len(ms) == 50 and ms.params["skipped"] == {}


@pytest.mark.parametrize("k,n", PAPER_PATTERNS)
def test_cast_conv_net(k, n):
    model = ConvNet().eval()
    ms = build_masks(model, "cast", calibration=_calib((2, 3, 8, 8)), pattern=(k, n))
    validate_masks(ms, model)
    everything = select_layers(model)
    assert set(ms.masks) | set(ms.params["skipped"]) == set(everything)
    for name, reason in ms.params["skipped"].items():
        expected = nm_ineligibility(everything[name], k, n)
        assert reason == expected or (expected is None and name == "stem"), (name, reason)
    assert "c2" in ms.masks  # CAST-conv: 3×3 conv through the im2col view
    assert ms.params["fallback"] == (["unused"] if "unused" in ms.masks else [])


def test_cast_determinism_and_alpha_noop_for_dense_source(small_vit):
    calib = _calib((2, 3, 32, 32))
    a = build_masks(small_vit, "cast", calibration=calib, pattern="4:8")
    b = build_masks(small_vit, "cast", calibration=calib, pattern="4:8")
    assert a == b
    c = build_masks(small_vit, "cast", calibration=calib, pattern="4:8", alpha_ser=0.0)
    assert a.same_masks(c)  # dense source: every pattern is at Hamming distance n - k


def _sparse_copy(model, sparsity=0.5):
    import copy

    sparse = copy.deepcopy(model)
    with torch.no_grad():
        for mod in select_layers(sparse).values():
            mod.weight.mul_(magnitude_mask(mod.weight, sparsity))
    return sparse


def test_alpha_prior_pulls_towards_source_mask():
    dense = ConvNet().eval()
    # source with exactly 2 of 4 kept per group: a huge prior reproduces it
    src = _sparse_copy(dense, 0.0)
    with torch.no_grad():
        src.c2.weight.mul_(nm_magnitude_mask(-src.c2.weight.abs(), 2, 4))
    calib = _calib((2, 3, 8, 8))
    strong = build_masks(src, "cast", calibration=calib, pattern="2:4", alpha_ser=1e6,
                         layers=["c2"])
    assert torch.equal(strong.masks["c2"], src.c2.weight != 0)
    free = build_masks(src, "cast", calibration=calib, pattern="2:4", alpha_ser=0.0,
                       layers=["c2"], dense=dense)
    assert free.params["restored"]["c2"] > 0  # without the prior, dense slots come back


def test_free_restoration_split_and_materialize():
    dense = ConvNet().eval()
    src = _sparse_copy(dense, 0.6)
    calib = _calib((2, 3, 8, 8))
    ms = build_masks(src, "cast", calibration=calib, pattern="2:4", dense=dense, alpha_ser=0.1)
    assert ms.params["restoration_source"] == "dense"
    values = cast_values(src, ms, dense)
    split = restoration_split(src, ms, dense)
    n_restored = 0
    for name, (S, Q, P) in split.items():
        w_src = src.get_submodule(name).weight.detach()
        w_dense = dense.get_submodule(name).weight.detach()
        u = torch.where(w_src != 0, w_src, w_dense)
        assert torch.equal(S + Q + P, u)
        assert not bool(((S != 0) & (Q != 0)).any() | ((S != 0) & (P != 0)).any()
                        | ((Q != 0) & (P != 0)).any())
        assert torch.equal(S + Q, values[name])
        mask = ms.masks[name]
        assert torch.equal(Q != 0, mask & (w_src == 0) & (w_dense != 0))
        assert ms.params["restored"][name] == int((Q != 0).sum())
        assert ms.params["kept_zero"][name] == int((mask & (u == 0)).sum())
        assert ms.params["restoration_candidates"][name] == int((w_src == 0).sum())
        n_restored += ms.params["restored"][name]
    assert n_restored > 0
    with pytest.raises(ValueError, match="dense"):
        cast_values(src, ms)
    materialize(src, ms, dense)
    for name, v in values.items():
        w = src.get_submodule(name).weight.detach()
        assert torch.equal(w, v) and not bool((w != 0)[~ms.masks[name]].any())
    # without dense weights nothing is restored
    plain = build_masks(_sparse_copy(dense, 0.6), "cast", calibration=calib, pattern="2:4")
    assert sum(plain.params["restored"].values()) == 0
    assert sum(plain.params["kept_zero"].values()) > 0  # groups with < k source nonzeros


# ---------------------------------------------------------------------------- Wanda
def _pm1(shape, n_batches=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2, shape, generator=g).to(torch.float32) * 2 - 1
            for _ in range(n_batches)]


def test_wanda_equals_magnitude_with_equal_norms():
    model = torch.nn.Sequential(torch.nn.Linear(16, 8))
    calib = _pm1((5, 3, 16))  # every input coordinate is ±1: all norms equal
    w = model[0].weight.detach()
    ms = build_masks(model, "wanda", calibration=calib, pattern="2:4")
    assert torch.equal(ms.masks["0"], nm_magnitude_mask(w, 2, 4))
    ms = build_masks(model, "wanda", calibration=calib, sparsity=0.5, scope="layer")
    assert torch.equal(ms.masks["0"], magnitude_mask(w, 0.5))
    ms = build_masks(model, "wanda", calibration=calib, sparsity=0.5, scope="global")
    assert torch.equal(ms.masks["0"], magnitude_mask(w, 0.5))
    ms = build_masks(model, "wanda", calibration=calib, sparsity=0.25)  # per row
    rows = torch.stack([exact_prune_mask(r.abs(), 4) for r in w])
    assert torch.equal(ms.masks["0"], rows)
    assert bool((ms.masks["0"].sum(1) == 12).all())


def test_wanda_positive_control_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(16, 8))
    calib = _pm1((5, 3, 16))
    for b in calib:
        b[..., 3] = 0.0          # a dead input column: pruned first in every row
        b[..., 5] *= 100.0       # a loud one: kept in every row
    w = model[0].weight.detach()
    ms = build_masks(model, "wanda", calibration=calib, sparsity=0.5)
    assert not bool(ms.masks["0"][:, 3].any()) and bool(ms.masks["0"][:, 5].all())
    assert not torch.equal(ms.masks["0"], torch.stack([exact_prune_mask(r.abs(), 8) for r in w]))
    st = collect_input_stats(model, ["0"], calib)["0"]
    x = torch.cat(calib).reshape(-1, 16).to(F64)
    torch.testing.assert_close(st.input_norm, x.norm(dim=0))
    assert torch.equal(wanda_mask(w, st.input_norm, sparsity=0.5), ms.masks["0"])


def test_wanda_conv_and_vit(small_vit):
    ms = build_masks(ConvNet(), "wanda", calibration=_calib((2, 3, 8, 8)), pattern="2:4")
    validate_masks(ms)
    ms = build_masks(small_vit, "wanda", calibration=_calib((2, 3, 32, 32)), sparsity=0.3)
    assert ms.achieved_sparsity == pytest.approx(0.3, abs=0.01)
    a = build_masks(small_vit, "wanda", calibration=_calib((2, 3, 32, 32)), pattern="8:16")
    b = build_masks(small_vit, "wanda", calibration=_calib((2, 3, 32, 32)), pattern="8:16")
    validate_masks(a, small_vit)
    assert a == b


# ---------------------------------------------------------------------------- bad input
def test_bad_input():
    model = ConvNet()
    calib = _calib((1, 3, 8, 8), n_batches=1)
    for method, kw in (("cast", {"pattern": "2:4"}), ("wanda", {"sparsity": 0.5})):
        with pytest.raises(ValueError, match="calibration"):
            build_masks(model, method, **kw)
        with pytest.raises(ValueError, match="no batch"):
            build_masks(model, method, calibration=[], **kw)
    for bad in ("4:4", "5:4", (3, 2)):
        with pytest.raises(ValueError, match="k <"):
            build_masks(model, "cast", calibration=calib, pattern=bad)
    with pytest.raises(ValueError, match="k <"):
        cast_select(torch.randn(4, 8), torch.eye(4).expand(2, 4, 4), 4, 4)
    with pytest.raises(ValueError, match="pattern"):
        build_masks(model, "cast", calibration=calib)
    with pytest.raises(ValueError, match="sparsity"):
        build_masks(model, "cast", calibration=calib, sparsity=0.5, pattern="2:4")
    with pytest.raises(ValueError, match="cost"):
        build_masks(model, "cast", calibration=calib, pattern="2:4", cost="linf")
    with pytest.raises(ValueError, match="alpha_ser"):
        build_masks(model, "cast", calibration=calib, pattern="2:4", alpha_ser=-1.0)
    with pytest.raises(ValueError, match="scope"):
        build_masks(model, "wanda", calibration=calib, sparsity=0.5, scope="column")
    with pytest.raises(ValueError, match="group_cov"):
        cast_select(torch.randn(4, 8), torch.eye(4).expand(3, 4, 4), 2, 4)
