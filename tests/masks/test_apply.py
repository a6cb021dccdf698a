"""apply_masks / remove_masks round trips and frozen-mask fine-tuning (ALGORITHMS §A.3)."""

import copy

import pytest
import torch
from torch.nn.utils import prune

from certkit.masks import (
    MaskSet,
    apply_masks,
    build_masks,
    frozen_masks,
    mask_gradients,
    masked_finetune_step,
    remove_masks,
    rezero_weights,
)


def _x():
    return torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(3))


def _masked_copy(net, ms):
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for n in ms.names:
            ref.get_submodule(n).weight.mul_(ms[n])
    return ref


def test_prune_mode_uses_torch_prune_and_matches_inplace(tiny_net):
    ms = build_masks(tiny_net, "magnitude", sparsity=0.5)
    dense = copy.deepcopy(tiny_net)
    ref = _masked_copy(tiny_net, ms)
    pruned = apply_masks(copy.deepcopy(tiny_net), ms, mode="prune")
    inplace = apply_masks(copy.deepcopy(tiny_net), ms, mode="inplace")
    for n in ms.names:
        mod = pruned.get_submodule(n)
        assert prune.is_pruned(mod) and hasattr(mod, "weight_orig")
        assert torch.equal(mod.weight_mask.bool(), ms[n])
        assert torch.equal(inplace.get_submodule(n).weight, ref.get_submodule(n).weight)
    x = _x()
    with torch.no_grad():
        assert torch.equal(pruned(x), ref(x)) and torch.equal(inplace(x), ref(x))
    # R is still available on the reparametrised model (weight_orig), not after in-place zeroing
    R = ms.removed(pruned)
    for n in ms.names:
        assert torch.equal(R[n], ms.removed(dense)[n])
        assert not ms.removed(inplace)[n].any()
    assert remove_masks(pruned) == ms.names
    assert not prune.is_pruned(pruned) and remove_masks(pruned) == []
    for n in ms.names:
        mod = pruned.get_submodule(n)
        assert not hasattr(mod, "weight_orig") and isinstance(mod.weight, torch.nn.Parameter)
        assert torch.equal(mod.weight, ref.get_submodule(n).weight)


def test_second_application_composes(tiny_net):
    a = build_masks(tiny_net, "magnitude", sparsity=0.3)
    b = build_masks(tiny_net, "magnitude", sparsity=0.3, scope="layerwise")
    net = apply_masks(apply_masks(copy.deepcopy(tiny_net), a), b)
    for n in a.names:
        assert torch.equal(net.get_submodule(n).weight_mask.bool(), a[n] & b[n])


def test_apply_validates_everything_before_touching_the_model(tiny_net):
    ms = build_masks(tiny_net, "magnitude", sparsity=0.5)
    bad = MaskSet({**ms.masks, "missing": torch.ones(2, dtype=torch.bool)}, "m")
    before = copy.deepcopy(tiny_net.state_dict())
    with pytest.raises(ValueError, match="missing"):
        apply_masks(tiny_net, bad)
    assert not prune.is_pruned(tiny_net)
    for k, v in tiny_net.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="mode"):
        apply_masks(tiny_net, ms, mode="zero")
    with pytest.raises(TypeError, match="MaskSet"):
        apply_masks(tiny_net, ms.masks)


def _train(net, ms, steps, *, use_context, mode):
    apply_masks(net, ms, mode=mode)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    x, y = _x(), torch.tensor([0, 1, 2, 3])
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    if use_context:
        with frozen_masks(net, ms, opt):
            for _ in range(steps):
                opt.zero_grad()
                loss_fn(net(x), y).backward()
                for n in ms.names:  # the hook masked the gradient already
                    mod = net.get_submodule(n)
                    g = getattr(mod, "weight_orig", mod.weight).grad
                    if g is not None:
                        assert not g[~ms[n]].any()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
    else:
        for _ in range(steps):
            masked_finetune_step(net, ms, opt, loss_fn(net(x), y), max_grad_norm=1.0)


@pytest.mark.parametrize("use_context", [False, True])
@pytest.mark.parametrize("mode", ["inplace", "prune"])
def test_frozen_mask_finetuning_keeps_pruned_entries_zero(tiny_net, use_context, mode):
    ms = build_masks(tiny_net, "magnitude", sparsity=0.6)
    start = {n: tiny_net.get_submodule(n).weight.detach().clone() for n in ms.names}
    _train(tiny_net, ms, 5, use_context=use_context, mode=mode)
    for n in ms.names:
        W = tiny_net.get_submodule(n).weight.detach()
        assert not W[~ms[n]].any(), n
        assert not torch.equal(W[ms[n]], start[n][ms[n]]), f"{n} did not train"


def test_gradient_and_rezero_helpers(tiny_net):
    ms = build_masks(tiny_net, "magnitude", sparsity=0.5)
    tiny_net(_x()).sum().backward()
    mask_gradients(tiny_net, ms)
    for n in ms.names:
        assert not tiny_net.get_submodule(n).weight.grad[~ms[n]].any()
    rezero_weights(tiny_net, ms)
    for n in ms.names:
        assert not tiny_net.get_submodule(n).weight[~ms[n]].any()
    with pytest.raises(ValueError, match="scalar"):
        masked_finetune_step(tiny_net, ms, torch.optim.SGD(tiny_net.parameters(), lr=0.1),
                             torch.ones(2))


def test_frozen_masks_removes_its_hooks(tiny_net):
    ms = build_masks(tiny_net, "magnitude", sparsity=0.5)
    opt = torch.optim.SGD(tiny_net.parameters(), lr=0.1)
    with frozen_masks(tiny_net, ms, opt):
        pass
    tiny_net(_x()).sum().backward()
    grads = [tiny_net.get_submodule(n).weight.grad for n in ms.names]
    assert any(g[~ms[n]].any() for g, n in zip(grads, ms.names, strict=True))
    assert not opt._optimizer_step_post_hooks
