"""build_masks: the issue-4 contract signature, the method registry and argument validation."""

import inspect

import pytest
import torch

from certkit import masks as M
from certkit.masks import CONTRACT_METHODS, MaskSet, build_masks, list_methods


def test_contract_signature_and_names():
    params = list(inspect.signature(build_masks).parameters.values())
    assert [(p.name, p.default) for p in params[:7]] == [
        ("model", inspect.Parameter.empty), ("method", inspect.Parameter.empty),
        ("calibration", None), ("sparsity", None), ("pattern", None), ("permute", False),
        ("params", inspect.Parameter.empty)]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert set(CONTRACT_METHODS) <= set(list_methods())
    assert set(CONTRACT_METHODS) <= set(list_methods(implemented_only=True))
    for name in ("build_masks", "apply_masks", "validate_nm", "MaskSet"):
        assert name in M.__all__
    import certkit

    assert certkit.masks is M and "masks" in certkit.__all__


def test_global_layerwise_and_determinism(tiny_net):
    g = build_masks(tiny_net, "magnitude", sparsity=0.5)
    assert isinstance(g, MaskSet) and g.method == "magnitude"
    assert g.params["scope"] == "global" and g.params["sparsity"] == 0.5
    total = g.n_total
    assert g.n_pruned == int(0.5 * total + 0.5)
    assert g == build_masks(tiny_net, "magnitude", sparsity=0.5)
    lw = build_masks(tiny_net, "magnitude", sparsity=0.5, scope="layerwise")
    assert lw.params["scope"] == "layerwise" and lw != g
    W = {n: tiny_net.get_submodule(n).weight.detach().clone() for n in g.names}
    build_masks(tiny_net, "magnitude", sparsity=0.9)  # never modifies the weights
    assert all(torch.equal(W[n], tiny_net.get_submodule(n).weight) for n in g.names)


def test_layers_argument(tiny_net):
    sel = M.select_layers(tiny_net, include=("linear",))
    a = build_masks(tiny_net, "magnitude", sparsity=0.5, layers=sel)
    b = build_masks(tiny_net, "magnitude", sparsity=0.5, layers=["fc1", "head"])
    assert a.names == ["fc1", "head"] and a == b
    with pytest.raises(ValueError, match="empty"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, layers=[])
    with pytest.raises(ValueError, match="no submodule"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, layers=["nope"])
    with pytest.raises(TypeError, match="layers"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, layers="fc1")


def test_pattern_skips_ineligible_layers_with_reasons(tiny_net):
    ms = build_masks(tiny_net, "magnitude", pattern="2:4",
                     layers=M.select_layers(tiny_net, depthwise=True))
    assert ms.names == ["pw", "fc1", "head"]
    assert set(ms.params["skipped"]) == {"stem", "dw"}
    assert "depthwise" in ms.params["skipped"]["dw"]
    M.validate_masks(ms, tiny_net)
    with pytest.raises(ValueError, match="no selected layer"):
        build_masks(tiny_net, "magnitude", pattern="2:4", layers=["stem"])


def test_unknown_method_lists_valid_names(tiny_net):
    with pytest.raises(ValueError, match=r"valid methods: \[.*'magnitude'.*'wanda'"):
        build_masks(tiny_net, "l1", sparsity=0.5)


def test_planned_methods_say_so(tiny_net):
    """A registered-but-planned method raises NotImplementedError naming it as planned."""
    from certkit.masks import build as B

    B._planned("_test_planned", "a placeholder", "ALGORITHMS §0")
    try:
        assert "_test_planned" not in list_methods(implemented_only=True)
        with pytest.raises(NotImplementedError, match="planned"):
            build_masks(tiny_net, "_test_planned", sparsity=0.5)
    finally:
        del B.METHODS["_test_planned"]


def test_bad_arguments(tiny_net):
    for bad in (-0.1, 1.0, 1.2):
        with pytest.raises(ValueError, match="sparsity"):
            build_masks(tiny_net, "magnitude", sparsity=bad)
    with pytest.raises(ValueError, match="k"):
        build_masks(tiny_net, "magnitude", pattern="4:4")
    with pytest.raises(ValueError, match="k:n"):
        build_masks(tiny_net, "magnitude", pattern="2/4")
    with pytest.raises(ValueError, match="not both"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, pattern="2:4")
    with pytest.raises(ValueError, match="needs sparsity"):
        build_masks(tiny_net, "magnitude")
    with pytest.raises(ValueError, match="scope"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, scope="per-row")
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, alpha=1.0)
    with pytest.raises(ValueError, match="permute=True needs pattern"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, permute=True)
    with pytest.raises(ValueError, match="empty"):
        build_masks(torch.nn.Sequential(torch.nn.ReLU()), "magnitude", sparsity=0.5)
    with pytest.raises(TypeError, match="Module"):
        build_masks("model", "magnitude", sparsity=0.5)


def test_register_method_extension_point(tiny_net, monkeypatch):
    monkeypatch.setattr(M.build, "METHODS", dict(M.build.METHODS))

    M.build._planned("_stub", "a planned placeholder", "test")

    @M.register_method("_stub", description="test stub", spec="test")
    def _stub(model, layers, *, calibration, sparsity, pattern, **params):
        masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()}
        return MaskSet(masks, "_stub", {"sparsity": sparsity, **params})

    ms = build_masks(tiny_net, "_stub", calibration=[torch.zeros(1)], sparsity=0.1, extra=3)
    assert ms.method == "_stub" and ms.params == {"sparsity": 0.1, "extra": 3}
    assert "_stub" in M.list_methods(implemented_only=True)
    with pytest.raises(ValueError, match="already registered"):
        M.register_method("_stub", description="again")(_stub)
    M.register_method("_stub", description="again", replace=True)(_stub)
