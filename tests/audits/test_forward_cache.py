"""audits.forward_cache: execution-order plan, upstream replay with in-place consumers (a
torchvision ResNet block: ``ReLU(inplace=True)`` and ``out += identity``), weight sharing, and the
self-check that disables the cache for stateful / nondeterministic models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audits import AuditSettings, TensorCalibration, Variant, audit_model
from audits.forward_cache import UpstreamCache, trace_plan
from audits.lipschitz_modes import parse_mode, swapped_weights

pytest.importorskip("torchvision")
from torchvision.models.resnet import BasicBlock  # noqa: E402

TARGETS = ["stem.0", "layer1.conv1", "layer1.conv2", "layer1.downsample.0", "layer2.conv1",
           "layer2.conv2", "head"]


class F64Calibration(TensorCalibration):
    """Tensor calibration served in float64 (TensorCalibration stores float32)."""

    def load(self, indices):
        x, y = super().load(indices)
        return x.to(torch.float64), y


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(1.0 + 0.3 * torch.randn(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))


class ResNetLike(nn.Module):
    """Two torchvision BasicBlocks (in-place ReLU, ``out += identity``, a downsample branch that
    runs after conv2). ``head`` is registered first: execution order ≠ registration order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 5)
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                  nn.ReLU(inplace=True))
        down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
        self.layer1 = BasicBlock(4, 8, stride=2, downsample=down)
        self.layer2 = BasicBlock(8, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.head(torch.flatten(self.pool(x), 1))


def _model(seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = ResNetLike().double()
    _randomize_bn(net, gen)
    return net.eval()


def _x(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- trace_plan
def test_trace_plan_order_and_cache_points():
    net = _model()
    plan = trace_plan(net, _x(2, 0), reversed(TARGETS))
    assert plan.order == tuple(TARGETS)                     # execution order, not registration
    cp = plan.cache_points
    assert cp["stem.0"] == ()
    assert cp["layer1.conv1"] == ("stem",)
    # layer1.relu runs twice per forward: never a cache point
    assert cp["layer1.conv2"] == ("stem", "layer1.conv1", "layer1.bn1")
    assert cp["layer1.downsample.0"] == ("stem", "layer1.conv1", "layer1.bn1", "layer1.conv2",
                                         "layer1.bn2")
    assert cp["layer2.conv1"] == ("stem", "layer1")
    assert cp["layer2.conv2"] == ("stem", "layer1", "layer2.conv1", "layer2.bn1")
    assert cp["head"] == ("stem", "layer1", "layer2", "pool")
    assert set(plan.recorded) == {n for pts in cp.values() for n in pts}


def test_replay_reproduces_dense_outputs_for_every_target():
    net = _model()
    x = _x(3, 1)
    plan = trace_plan(net, x[:1], TARGETS)
    cache = UpstreamCache(net, plan)
    with torch.no_grad():
        with cache.recording():
            ref = net(x)
        for t in plan.order:
            with cache.replaying(t):
                assert torch.equal(net(x), ref), t
    assert cache.verify(x[:1], rtol=0.0, atol=0.0) is True and cache.enabled


def test_replay_does_not_recompute_cached_modules():
    net = _model()
    x = _x(2, 2)
    cache = UpstreamCache(net, trace_plan(net, x, TARGETS))
    calls = []
    handle = net.stem[0].register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            with cache.recording():
                net(x)
            assert len(calls) == 1
            with cache.replaying("layer2.conv2"):
                net(x)
    finally:
        handle.remove()
    assert len(calls) == 1          # the stem was replayed, not run
    assert "forward" not in vars(net.stem)   # the shadowing forward was removed again


def test_in_place_consumer_is_detected_and_results_stay_correct():
    net = _model()
    x1, x2 = _x(3, 3), _x(3, 4)
    cache = UpstreamCache(net, trace_plan(net, x1, TARGETS))
    target = "layer1.downsample.0"   # `out += identity` modifies bn2's (replayed) output in place
    with torch.no_grad():
        with cache.recording():
            ref1 = net(x1)
        with cache.replaying(target):
            assert torch.equal(net(x1), ref1)
        # the corrupted point is dropped for this batch and cloned from now on
        assert {"layer1.bn2", "layer1.bn1"} <= cache._clone_on_replay
        assert "layer1.bn2" not in cache._store
        # a second replay in the same batch would add identity twice if the point were kept
        for _ in range(2):
            with cache.replaying(target):
                assert torch.equal(net(x1), ref1)
        # next batch: replayed as clones, the store survives the in-place consumer
        with cache.recording():
            ref2 = net(x2)
        for _ in range(2):
            with cache.replaying(target):
                assert torch.equal(net(x2), ref2)
        assert "layer1.bn2" in cache._store


def test_replay_with_modified_weights_matches_full_forward_across_targets():
    net = _model()
    x = _x(4, 5)
    cache = UpstreamCache(net, trace_plan(net, x[:2], TARGETS))
    gen = torch.Generator().manual_seed(6)
    mods = dict(net.named_modules())
    with torch.no_grad():
        with cache.recording():
            dense = net(x)
        # several targets, some twice, in a scrambled order — as the engine replays one batch
        for t in ["layer1.conv2", "head", "layer1.downsample.0", "stem.0", "layer2.conv1",
                  "layer1.conv2", "layer2.conv2", "layer1.downsample.0", "layer1.conv1"]:
            W = mods[t].weight
            new = W * (torch.rand(W.shape, generator=gen, dtype=W.dtype) < 0.5)
            with swapped_weights(net, {t: new}):
                full = net(x)
                with cache.replaying(t):
                    replayed = net(x)
            assert not torch.equal(full, dense), t       # the change matters
            torch.testing.assert_close(replayed, full, rtol=0.0, atol=0.0, msg=t)
    # the weights were restored
    with torch.no_grad():
        assert torch.equal(net(x), dense)


def test_target_running_twice_raises():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(RuntimeError, match=r"'0' ran 2 times"):
        trace_plan(model, torch.randn(2, 4), ["0"])

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.extra = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"'extra' ran 0 times"):
        trace_plan(Unused(), torch.randn(2, 4), ["used", "extra"])


# --------------------------------------------------------------------------- verify
class CallShift(nn.Module):
    """Adds its call count to every logit: stateful, yet CE, margins and predictions are invariant
    (a per-sample constant shift of all logits)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return z + float(self.calls)


class Noise(nn.Module):
    """Nondeterministic: fresh noise on every call."""

    def forward(self, z):
        return z + 1e-3 * torch.randn_like(z)


def _mlp_with(tail: nn.Module) -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4),
                         tail).double().eval()


@pytest.mark.parametrize("tail", [CallShift, Noise])
def test_verify_disables_cache_for_stateful_or_nondeterministic_models(tail):
    model = _mlp_with(tail())
    x = torch.randn(2, 6, dtype=torch.float64)
    cache = UpstreamCache(model, trace_plan(model, x, ["0", "2", "4"]))
    assert cache.verify(x, rtol=1e-9, atol=1e-10) is False
    assert cache.enabled is False
    # disabled: recording/replaying are no-ops and every forward runs in full
    with torch.no_grad(), cache.recording():
        model(x)
    assert cache._store == {}


def test_engine_falls_back_to_full_passes_and_stays_correct():
    model = _mlp_with(CallShift())
    gen = torch.Generator().manual_seed(8)
    X = torch.randn(12, 6, generator=gen, dtype=torch.float64).float().double()
    y = torch.randint(0, 4, (12,), generator=gen)
    layers = ["0", "2", "4"]
    weights = {ln: model.get_submodule(ln).weight.detach()
               * (torch.rand(model.get_submodule(ln).weight.shape, generator=gen) < 0.6)
               for ln in layers}
    v = Variant("rand", weights)
    settings = AuditSettings(0.0, 0.0, parse_mode("constant:1"), outcome_samples=12,
                             lipschitz_samples=0, mp=False, progress=False)
    rep = audit_model(model, F64Calibration(X, y), [v], settings)
    assert any("upstream replay failed its self-check" in n for n in rep["notes"])
    ref = _mlp_with(nn.Identity())
    with torch.no_grad():
        dense_ce = float(F.cross_entropy(ref(X), y))
        assert rep["dense"]["ce"] == pytest.approx(dense_ce, rel=1e-12, abs=1e-12)
        for e in rep["variants"][0]["layers"]:
            with swapped_weights(ref, {e["name"]: weights[e["name"]]}):
                want = float(F.cross_entropy(ref(X), y)) - dense_ce
            assert e["outcome"]["ce_change"] == pytest.approx(want, rel=1e-9, abs=1e-12), e["name"]


def test_engine_with_cache_matches_full_forward_passes_on_resnet_blocks():
    net = _model(9)
    gen = torch.Generator().manual_seed(10)
    X = _x(10, 11).float().double()
    y = torch.randint(0, 5, (10,), generator=gen)
    mods = dict(net.named_modules())
    weights = {t: mods[t].weight.detach() * (torch.rand(mods[t].weight.shape, generator=gen) < 0.5)
               for t in TARGETS}
    settings = AuditSettings(0.0, 0.0, parse_mode("estimate"), outcome_samples=10,
                             lipschitz_samples=2, batch_size=4, mp=False, progress=False)
    rep = audit_model(net, F64Calibration(X, y), [Variant("half", weights)], settings)
    assert not any("self-check" in n for n in rep["notes"])          # the cache was used
    with torch.no_grad():
        dense_ce = float(F.cross_entropy(net(X), y))
        for e in rep["variants"][0]["layers"]:
            with swapped_weights(net, {e["name"]: weights[e["name"]]}):
                want = float(F.cross_entropy(net(X), y)) - dense_ce
            assert e["outcome"]["ce_change"] == pytest.approx(want, rel=1e-9, abs=1e-12), e["name"]
    assert [e["name"] for e in rep["variants"][0]["layers"]] == TARGETS
    assert rep["variants"][0]["multilayer"]["order"] == TARGETS[::-1]
