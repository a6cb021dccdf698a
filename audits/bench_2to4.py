r"""``certkit bench-2to4`` — 2:4 kernel benchmark with exact MAC accounting (issue 6).

For a timm model (random init, ``pretrained=False``; speed and MACs do not depend on weights):

1. 2:4 magnitude masks on every eligible layer (``build_masks(model, "magnitude",
   pattern="2:4")``); every mask is validated with :func:`certkit.masks.validate_nm` — PyTorch's
   CUTLASS conversion silently treats extra nonzeros of a group as zero (ANCHORS §3.1), so an
   invalid mask aborts every row that would use it (recorded with the reason, never timed).
2. The dense and sparse-execution MAC table (:func:`certkit.count_macs`, ALGORITHMS §9.4, the
   paper's Table 3 "MAC red." / "Th. spd.").
3. Masked-dense equivalence on CPU (fp32): ``apply_masks`` (``torch.nn.utils.prune``
   reparametrisation) against a copy whose weights are multiplied by the masks; tolerance
   :data:`EQUIV_RTOL`/:data:`EQUIV_ATOL` (the two compute the same products, so the difference
   is round-off only).
4. With CUDA: for every distinct eligible Linear shape and for the whole model with masks
   applied, dense vs ``torch.sparse.to_sparse_semi_structured`` (cuSPARSELt and CUTLASS, via
   ``SparseSemiStructuredTensor._FORCE_CUTLASS``), fp16/bf16, a batch sweep, warm-up, CUDA-event
   timing, median of repeats. Before timing, the packed weight is decompressed and compared with
   the masked weight exactly, and the sparse output with the masked-dense output (relative
   max-error :data:`OUTPUT_RTOL`); a mismatch aborts that row. Unlike ALGORITHMS §9.2 (fp32 dense
   vs TF32 sparse, outputs never checked: the 2.705× above the 2× bound) both sides run in the
   same dtype. In the end-to-end rows convs stay native cuDNN (dense); they are timed per layer
   in step 5.
5. Conv endpoint (ALGORITHMS §9.1 "Conv rows" (b), block ``conv_im2col``): every masked conv
   gets an eligibility entry (:func:`audits.im2col.sparse_gemm_reason`: Conv2d with its own
   ``forward``, ``groups == 1``, zero padding — ``padding="same"`` only with an odd receptive
   field —, ``C_in >= 4``, matrix ``(C_out, C_in·k_h·k_w)`` dims multiples of 16, valid 2:4
   mask); an ineligible conv is one skip row with its reason (an invalid mask: an aborted row).
   Eligible convs are deduplicated by ``(C_out, C_in, k_h, k_w, stride, padding, dilation, H_in,
   W_in, bias)``; each problem's exact lowering ``unfold → F.linear → reshape`` is checked on CPU
   in float64 against ``F.conv2d`` of the masked kernel (:data:`LOWERING_RTOL`; a failure
   aborts its rows). With CUDA, per problem, dtype, backend and batch: dense-im2col (masked
   dense matrix) vs sparse-im2col (the same matrix packed by ``to_sparse_semi_structured``), and
   the native cuDNN ``F.conv2d`` (``cudnn.benchmark``) as a reference column. Before timing, the
   packed matrix must decompress to the masked matrix and the sparse-im2col output must match
   the masked dense conv within :data:`OUTPUT_RTOL`, else the row is aborted. ``speedup`` =
   dense-im2col / sparse-im2col time (the paper's ResNet rows), ``speedup_vs_cudnn`` = cuDNN /
   sparse-im2col time.
6. Without CUDA the command still exits 0: masks validated, equivalence and im2col lowering
   checked, MAC table and conv eligibility printed, and skip rows :data:`SKIP_REASON` with null
   timings — never fake numbers.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from functools import partial

import torch

__all__ = ["EQUIV_ATOL", "EQUIV_RTOL", "LOWERING_RTOL", "OUTPUT_RTOL", "SKIP_REASON", "add_parser",
           "conv_groups", "main", "run_bench", "validate_all"]

#: The skip row's reason without CUDA.
SKIP_REASON = "2:4 timing needs a CUDA GPU (torch.cuda.is_available() is False)"
#: Masked-dense equivalence tolerance (fp32, CPU): ``allclose(rtol, atol)``.
EQUIV_RTOL, EQUIV_ATOL = 1e-5, 1e-5
#: Sparse-vs-masked-dense output check: ``max|y_s − y_d| ≤ tol·max(max|y_d|, 1)`` per dtype
#: (fp16/bf16 accumulate in fp32 in both kernels; the difference is summation order + rounding).
OUTPUT_RTOL = {"fp16": 1e-2, "bf16": 2e-2}
#: Looser end-to-end tolerance (errors compound over the blocks).
E2E_RTOL = {"fp16": 5e-2, "bf16": 1e-1}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("cusparselt", "cutlass")
#: CPU float64 check of the im2col lowering of every timed conv group (exact up to summation
#: order): ``max|y_im2col − y_conv| ≤ LOWERING_RTOL·max(max|y_conv|, 1)``.
LOWERING_RTOL = 1e-10
CONV_ENDPOINT = ("im2col + 2:4 sparse GEMM (ALGORITHMS §9.1 (b)): unfold → F.linear with the "
                 "(C_out, C_in·k_h·k_w) masked matrix, dense vs to_sparse_semi_structured, "
                 "native cuDNN conv as reference")


# ----------------------------------------------------------------------------- model & masks
def create_model(name: str, img_size: int | None = None) -> torch.nn.Module:
    """``timm.create_model(name, pretrained=False)`` (with ``img_size`` where accepted)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm

    if img_size is not None:
        try:
            return timm.create_model(name, pretrained=False, img_size=img_size).eval()
        except TypeError:  # CNNs take any input size and no img_size argument
            pass
    try:
        return timm.create_model(name, pretrained=False).eval()
    except RuntimeError as exc:
        raise ValueError(f"timm cannot create model {name!r}: {exc}") from exc


def input_shape_of(model: torch.nn.Module, img_size: int | None) -> tuple[int, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    c, h, w = cfg.get("input_size", (3, 224, 224))
    return (c, img_size, img_size) if img_size is not None else (c, h, w)


def validate_all(maskset, k: int, n: int) -> dict[str, dict]:
    """``{layer: {"valid": bool, "error": str | None}}`` from :func:`validate_nm` per mask."""
    from certkit.masks import validate_nm

    out = {}
    for name, mask in maskset.masks.items():
        try:
            validate_nm(mask, k, n)
            out[name] = {"valid": True, "error": None}
        except ValueError as exc:
            out[name] = {"valid": False, "error": str(exc)}
    return out


def equivalence_check(model: torch.nn.Module, maskset, input_shape, *, batch: int = 2,
                      seed: int = 0) -> dict:
    """``apply_masks`` (prune reparametrisation) vs weights multiplied by the masks, fp32 CPU."""
    from certkit.masks import apply_masks
    from certkit.masks._modules import get_module

    a = apply_masks(copy.deepcopy(model).float().cpu().eval(), maskset)
    b = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        for name, mask in maskset.masks.items():
            w = get_module(b, name).weight
            w.mul_(mask.to(w.dtype))
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((batch, *input_shape), generator=g)
        ya, yb = a(x), b(x)
    diff = float((ya - yb).abs().max())
    ok = bool(torch.allclose(ya, yb, rtol=EQUIV_RTOL, atol=EQUIV_ATOL))
    return {"passed": ok, "max_abs_diff": diff, "rtol": EQUIV_RTOL, "atol": EQUIV_ATOL,
            "batch": batch, "device": "cpu", "dtype": "fp32",
            "what": "apply_masks (torch.nn.utils.prune) vs W*M in place, whole model"}


# ----------------------------------------------------------------------------- CUDA timing
def _env() -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "cuda_available": torch.cuda.is_available(), "gpu": None, "capability": None,
           "cusparselt": None}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        cslt = getattr(torch.backends, "cusparselt", None)
        if cslt is not None and cslt.is_available():
            env["cusparselt"] = cslt.version()
    return env


def _available_backends() -> list[str]:
    cslt = getattr(torch.backends, "cusparselt", None)
    out = []
    if cslt is not None and cslt.is_available():
        out.append("cusparselt")
    out.append("cutlass")
    return out


def _to_sparse(w: torch.Tensor, backend: str) -> torch.Tensor:
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    old = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
    try:
        return to_sparse_semi_structured(w)
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = old


def _time_ms(fn, warmup: int, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` CUDA-event timings after ``warmup``."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
    return statistics.median(times)


def _check_sparse_linear(w: torch.Tensor, ws: torch.Tensor, x: torch.Tensor, dtype: str
                         ) -> str | None:
    """None if the packed weight decompresses to ``w`` and its output matches, else why."""
    dec = ws.to_dense()
    if not torch.equal(dec, w):
        bad = int((dec != w).sum())
        return f"packed weight decompresses to a different matrix ({bad} entries differ)"
    with torch.no_grad():
        yd = torch.nn.functional.linear(x, w)
        ys = torch.nn.functional.linear(x, ws)
    err = float((ys.float() - yd.float()).abs().max())
    scale = max(float(yd.float().abs().max()), 1.0)
    if not math.isfinite(err) or err > OUTPUT_RTOL[dtype] * scale:
        return (f"sparse output differs from masked dense: max abs err {err:.3g} > "
                f"{OUTPUT_RTOL[dtype]}·{scale:.3g}")
    return None


def _shape_rows_cuda(shapes: dict, model, maskset, batches, dtypes, backends,
                     warmup, repeats) -> list[dict]:
    from certkit.masks._modules import get_module

    rows = []
    for (out_f, in_f), info in shapes.items():
        name = info["layers"][0]
        w32 = get_module(model, name).weight.detach() * maskset.masks[name].to(torch.float32)
        for dt in dtypes:
            w = w32.to("cuda", DTYPES[dt]).contiguous()
            for be in backends:
                base = {"shape": [out_f, in_f], "layers": info["layers"], "tokens": info["tokens"],
                        "dtype": dt, "backend": be}
                try:
                    ws = _to_sparse(w, be)
                except Exception as exc:  # noqa: BLE001 - recorded: unsupported shape/backend
                    for b in batches:
                        rows.append({**base, "batch": b, "status": "skipped",
                                     "reason": f"conversion failed: {type(exc).__name__}: {exc}",
                                     **_null_timing()})
                    continue
                for b in batches:
                    m = b * info["tokens"]
                    x = torch.randn(m, in_f, device="cuda", dtype=DTYPES[dt])
                    why = _check_sparse_linear(w, ws, x, dt)
                    if why is not None:
                        rows.append({**base, "batch": b, "status": "aborted", "reason": why,
                                     **_null_timing()})
                        continue
                    td = _time_ms(lambda x=x, w=w: torch.nn.functional.linear(x, w), warmup,
                                  repeats)
                    ts = _time_ms(lambda x=x, ws=ws: torch.nn.functional.linear(x, ws), warmup,
                                  repeats)
                    rows.append({**base, "batch": b, "status": "ok", "reason": None,
                                 "dense_ms": td, "sparse_ms": ts,
                                 "dense_throughput": m / td * 1e3, "sparse_throughput": m / ts * 1e3,
                                 "throughput_unit": "rows/s", "speedup": td / ts})
                del ws
    return rows


def _null_timing() -> dict:
    return {"dense_ms": None, "sparse_ms": None, "dense_throughput": None,
            "sparse_throughput": None, "throughput_unit": None, "speedup": None}


def _null_conv_timing() -> dict:
    return {**_null_timing(), "cudnn_ms": None, "cudnn_throughput": None,
            "speedup_vs_cudnn": None}


def _e2e_rows_cuda(model, maskset, input_shape, batches, dtypes, backends, warmup, repeats
                   ) -> list[dict]:
    from certkit.masks import apply_masks
    from certkit.masks._modules import get_module

    masked = apply_masks(copy.deepcopy(model).float().cpu(), maskset, mode="inplace").eval()
    rows = []
    for dt in dtypes:
        dense = copy.deepcopy(masked).to("cuda", DTYPES[dt]).eval()
        for be in backends:
            sparse = copy.deepcopy(dense)
            converted, skipped, why = [], {}, None
            for name in maskset.masks:
                mod = get_module(sparse, name)
                if not isinstance(mod, torch.nn.Linear):
                    skipped[name] = ("not a Linear (convs stay native cuDNN end to end; the "
                                     "im2col endpoint is timed per conv in conv_im2col)")
                    continue
                w = mod.weight.detach().contiguous()
                try:
                    ws = _to_sparse(w, be)
                except Exception as exc:  # noqa: BLE001 - recorded, layer stays dense
                    skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                x = torch.randn(64, w.shape[1], device="cuda", dtype=w.dtype)
                bad = _check_sparse_linear(w, ws, x, dt)
                if bad is not None:
                    why = f"layer {name}: {bad}"
                    break
                mod.weight = torch.nn.Parameter(ws, requires_grad=False)
                converted.append(name)
            for b in batches:
                base = {"dtype": dt, "backend": be, "batch": b, "converted_layers": len(converted),
                        "dense_layers_kept": skipped}
                if why is not None:
                    rows.append({**base, "status": "aborted", "reason": why, **_null_timing()})
                    continue
                x = torch.randn((b, *input_shape), device="cuda", dtype=DTYPES[dt])
                with torch.no_grad():
                    yd, ys = dense(x).float(), sparse(x).float()
                err = float((yd - ys).abs().max())
                scale = max(float(yd.abs().max()), 1.0)
                if not math.isfinite(err) or err > E2E_RTOL[dt] * scale:
                    rows.append({**base, "status": "aborted", "reason": (
                        f"end-to-end output differs: max abs err {err:.3g} > "
                        f"{E2E_RTOL[dt]}·{scale:.3g}"), **_null_timing()})
                    continue
                td = _time_ms(lambda x=x, f=dense: f(x), warmup, repeats)
                ts = _time_ms(lambda x=x, f=sparse: f(x), warmup, repeats)
                rows.append({**base, "status": "ok", "reason": None, "max_abs_err": err,
                             "dense_ms": td, "sparse_ms": ts, "dense_throughput": b / td * 1e3,
                             "sparse_throughput": b / ts * 1e3, "throughput_unit": "images/s",
                             "speedup": td / ts})
            del sparse
        del dense
        torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------- conv im2col endpoint
def _conv_input_hw(model: torch.nn.Module, names: Sequence[str], input_shape) -> dict[str, list[int]]:
    """Input ``[H, W]`` of each named Conv2d from one batch-1 forward with hooks."""
    from certkit.masks._modules import get_module

    seen: dict[str, list[int]] = {}
    handles = []
    for nm in names:
        mod = get_module(model, nm)
        if isinstance(mod, torch.nn.Conv2d):
            def hook(m, inp, out, nm=nm):
                seen.setdefault(nm, [int(inp[0].shape[-2]), int(inp[0].shape[-1])])
            handles.append(mod.register_forward_hook(hook))
    if not handles:
        return seen
    p = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=p.device, dtype=p.dtype))
    finally:
        for h in handles:
            h.remove()
    return seen


def conv_groups(model: torch.nn.Module, maskset, input_shape, validity: dict[str, dict]
                ) -> tuple[dict[str, dict], dict[tuple, dict]]:
    """Per-conv eligibility for the im2col endpoint and the distinct eligible conv problems.

    Parameters
    ----------
    model : torch.nn.Module
        The model (CPU); one batch-1 forward records each conv's input size.
    maskset : MaskSet
        Masks; every masked layer that is not a Linear is considered.
    input_shape : tuple of int
        Per-sample input shape.
    validity : dict
        :func:`validate_all` output.

    Returns
    -------
    layers : dict
        ``{layer: {"eligible", "reason", "shape", "matrix", "stride", "padding", "dilation",
        "bias", "input_hw", "output_hw", ...}}``; ``reason`` is ``None`` iff eligible.
    groups : dict
        ``{(C_out, C_in, k_h, k_w, stride, padding, dilation, H_in, W_in, bias): {"layers": [...],
        ...conv fields}}`` over eligible layers (same lowered GEMM problem → timed once).
    """
    from audits.im2col import output_hw, resolve_padding, sparse_gemm_reason
    from certkit.masks._modules import get_module

    names = [nm for nm in maskset.masks if not isinstance(get_module(model, nm), torch.nn.Linear)]
    in_hw = _conv_input_hw(model, names, input_shape)
    layers: dict[str, dict] = {}
    groups: dict[tuple, dict] = {}
    for nm in names:
        mod = get_module(model, nm)
        info: dict = {"type": type(mod).__name__, "shape": list(mod.weight.shape)}
        why = sparse_gemm_reason(mod)
        if isinstance(mod, torch.nn.Conv2d):
            pad = resolve_padding(mod)
            hw = in_hw.get(nm)
            info.update({"matrix": [mod.out_channels, mod.weight[0].numel()],
                         "stride": list(mod.stride), "dilation": list(mod.dilation),
                         "padding": pad if isinstance(pad, str) else list(pad),
                         "groups": mod.groups, "padding_mode": mod.padding_mode,
                         "bias": mod.bias is not None, "input_hw": hw,
                         "output_hw": (list(output_hw(tuple(hw), mod.kernel_size, mod.stride, pad,
                                                      mod.dilation))
                                       if hw is not None and not isinstance(pad, str) else None)})
            if why is None and hw is None:
                why = "not reached by a forward pass of the model (input size unknown)"
        if why is None and not validity[nm]["valid"]:
            why = f"invalid mask: {validity[nm]['error']}"
        info.update({"eligible": why is None, "reason": why})
        layers[nm] = info
        if why is None:
            key = (*info["shape"], tuple(info["stride"]), tuple(info["padding"]),
                   tuple(info["dilation"]), *info["input_hw"], info["bias"])
            g = groups.setdefault(key, {k: info[k] for k in (
                "shape", "matrix", "stride", "padding", "dilation", "bias", "input_hw",
                "output_hw")} | {"layers": []})
            g["layers"].append(nm)
    return layers, groups


def _conv_base(g: dict) -> dict:
    return {"layers": g["layers"], "shape": g["shape"], "matrix": g["matrix"],
            "stride": g["stride"], "padding": g["padding"], "dilation": g["dilation"],
            "bias": g["bias"], "input_hw": g["input_hw"], "output_hw": g["output_hw"]}


def _masked_kernel(model: torch.nn.Module, maskset, name: str) -> torch.Tensor:
    from certkit.masks._modules import get_module

    w = get_module(model, name).weight.detach()
    return w * maskset.masks[name].reshape(w.shape).to(w.dtype)


def _conv_lowering_check(model: torch.nn.Module, maskset, g: dict, seed: int = 0) -> dict:
    """CPU float64: im2col of the masked matrix vs ``F.conv2d`` of the masked kernel (batch 1)."""
    from audits.im2col import im2col_conv2d
    from certkit.masks._modules import get_module

    name = g["layers"][0]
    conv = get_module(model, name)
    w = _masked_kernel(model, maskset, name).to("cpu", torch.float64)
    b = None if conv.bias is None else conv.bias.detach().to("cpu", torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((1, conv.in_channels, *g["input_hw"]), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        ref = torch.nn.functional.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation)
        low = im2col_conv2d(x, w.reshape(w.shape[0], -1), b, conv.kernel_size, conv.stride,
                            g["padding"], conv.dilation)
    err = float((low - ref).abs().max()) if low.shape == ref.shape else math.inf
    scale = max(float(ref.abs().max()), 1.0)
    return {"passed": math.isfinite(err) and err <= LOWERING_RTOL * scale, "max_abs_diff": err,
            "scale": scale, "layer": name}


def _conv_rows_cuda(groups: dict, model, maskset, batches, dtypes, backends, warmup, repeats
                    ) -> list[dict]:
    """Dense-im2col vs sparse-im2col (and native cuDNN) per conv group, dtype, backend, batch."""
    from audits.im2col import im2col_conv2d
    from certkit.masks._modules import get_module

    F = torch.nn.functional
    rows = []
    old_bench = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # ALGORITHMS §9.1: cuDNN reference autotuned
    try:
        for g in groups.values():
            name = g["layers"][0]
            conv = get_module(model, name)
            ks, st, pd, dl = tuple(conv.kernel_size), tuple(g["stride"]), tuple(g["padding"]), \
                tuple(g["dilation"])
            w32 = _masked_kernel(model, maskset, name).float().cpu()
            for dt in dtypes:
                w4 = w32.to("cuda", DTYPES[dt]).contiguous()
                wm = w4.reshape(w4.shape[0], -1).contiguous()
                bias = None if conv.bias is None else conv.bias.detach().to("cuda", DTYPES[dt])
                for be in backends:
                    base = {**_conv_base(g), "dtype": dt, "backend": be}
                    try:
                        ws = _to_sparse(wm, be)
                    except Exception as exc:  # noqa: BLE001 - recorded: unsupported shape/backend
                        rows += [{**base, "batch": b, "status": "skipped", "reason":
                                  f"conversion failed: {type(exc).__name__}: {exc}"[:300],
                                  **_null_conv_timing()} for b in batches]
                        continue
                    for b in batches:
                        x = torch.randn((b, conv.in_channels, *g["input_hw"]), device="cuda",
                                        dtype=DTYPES[dt])
                        m = b * g["output_hw"][0] * g["output_hw"][1]
                        try:
                            xc = torch.randn(64, wm.shape[1], device="cuda", dtype=DTYPES[dt])
                            why = _check_sparse_linear(wm, ws, xc, dt)
                            if why is None:
                                with torch.no_grad():
                                    yc = F.conv2d(x, w4, bias, st, pd, dl).float()
                                    ys = im2col_conv2d(x, ws, bias, ks, st, pd, dl).float()
                                err = float((ys - yc).abs().max())
                                scale = max(float(yc.abs().max()), 1.0)
                                if not math.isfinite(err) or err > OUTPUT_RTOL[dt] * scale:
                                    why = (f"sparse im2col output differs from the masked dense conv: "
                                           f"max abs err {err:.3g} > {OUTPUT_RTOL[dt]}·{scale:.3g}")
                        except Exception as exc:  # noqa: BLE001 - recorded, never timed
                            why = f"sparse im2col failed: {type(exc).__name__}: {exc}"[:300]
                        if why is not None:
                            rows.append({**base, "batch": b, "status": "aborted", "reason": why,
                                         **_null_conv_timing()})
                            continue
                        try:
                            td = _time_ms(partial(im2col_conv2d, x, wm, bias, ks, st, pd, dl),
                                          warmup, repeats)
                            ts = _time_ms(partial(im2col_conv2d, x, ws, bias, ks, st, pd, dl),
                                          warmup, repeats)
                            tc = _time_ms(partial(F.conv2d, x, w4, bias, st, pd, dl), warmup,
                                          repeats)
                        except Exception as exc:  # noqa: BLE001 - e.g. out of memory at a batch
                            rows.append({**base, "batch": b, "status": "aborted", "reason":
                                         f"timing failed: {type(exc).__name__}: {exc}"[:300],
                                         **_null_conv_timing()})
                            del x
                            torch.cuda.empty_cache()
                            continue
                        rows.append({**base, "batch": b, "status": "ok", "reason": None,
                                     "gemm_rows": m, "max_abs_err": err,
                                     "dense_ms": td, "sparse_ms": ts, "cudnn_ms": tc,
                                     "dense_throughput": b / td * 1e3,
                                     "sparse_throughput": b / ts * 1e3,
                                     "cudnn_throughput": b / tc * 1e3, "throughput_unit": "images/s",
                                     "speedup": td / ts, "speedup_vs_cudnn": tc / ts})
                        del x
                    del ws
                torch.cuda.empty_cache()
    finally:
        torch.backends.cudnn.benchmark = old_bench
    return rows


def _conv_section(model, maskset, ishape, validity, batches, dtypes, backends, warmup, repeats,
                  *, enabled: bool, cuda: bool) -> dict:
    """The ``conv_im2col`` JSON block: eligibility per conv, CPU lowering checks, rows."""
    layers, groups = conv_groups(model, maskset, ishape, validity)
    out = {"endpoint": CONV_ENDPOINT, "layers": layers, "groups": len(groups),
           "lowering_rtol": LOWERING_RTOL, "output_rtol": OUTPUT_RTOL,
           "speedup": "dense-im2col ms / sparse-im2col ms (speedup_vs_cudnn: cuDNN ms / "
                      "sparse-im2col ms)", "rows": [], "lowering_checks": []}
    if not layers:
        return {**out, "status": "no convs", "reason": "the mask set has no conv layers"}
    if not enabled:
        return {**out, "status": "disabled", "reason": "--no-conv"}
    rows: list[dict] = []
    for nm, info in layers.items():
        if not info["eligible"]:
            status = "aborted" if info["reason"].startswith("invalid mask") else "skipped"
            rows.append({"layers": [nm], "shape": info["shape"], "dtype": None, "backend": None,
                         "batch": None, "status": status, "reason": info["reason"],
                         **_null_conv_timing()})
    timed = {}
    for key, g in groups.items():
        chk = _conv_lowering_check(model, maskset, g)
        out["lowering_checks"].append({**chk, "layers": g["layers"]})
        if not chk["passed"]:
            why = (f"im2col lowering differs from F.conv2d on CPU (float64): max abs diff "
                   f"{chk['max_abs_diff']:.3g} > {LOWERING_RTOL}·{chk['scale']:.3g}")
            rows += [{**_conv_base(g), "dtype": dt, "backend": None, "batch": b,
                      "status": "aborted", "reason": why, **_null_conv_timing()}
                     for dt in dtypes for b in batches]
        elif not cuda:
            rows += [{**_conv_base(g), "dtype": dt, "backend": None, "batch": b,
                      "status": "skipped", "reason": SKIP_REASON, **_null_conv_timing()}
                     for dt in dtypes for b in batches]
        else:
            timed[key] = g
    if timed:
        rows += _conv_rows_cuda(timed, model, maskset, batches, dtypes, backends, warmup, repeats)
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        status, reason = "ok", None
    elif not groups:
        status, reason = "skipped", "no eligible conv layer (see each layer's reason)"
    elif not cuda:
        status, reason = "skipped", SKIP_REASON
    else:
        status, reason = "skipped", "no conv row was timed (see the rows' reasons)"
    return {**out, "status": status, "reason": reason, "rows": rows,
            "best": max(ok, key=lambda r: r["speedup"]) if ok else None}


# ----------------------------------------------------------------------------- driver
def run_bench(model_name: str, *, batches: Sequence[int] = (1, 8, 64),
              dtypes: Sequence[str] = ("fp16", "bf16"), pattern: str = "2:4", repeats: int = 20,
              warmup: int = 5, img_size: int | None = None, model: torch.nn.Module | None = None,
              maskset=None, tome_r: int = 0, shapes: bool = True, end_to_end: bool = True,
              backends: Sequence[str] | None = None, conv: bool = True) -> dict:
    """Run the benchmark (module docstring) and return the JSON-ready result.

    ``model``/``maskset`` override the timm model and the magnitude masks (tests use this to
    inject a corrupted mask). Timing needs CUDA; without it the timing rows are skip rows with
    null numbers. ``shapes``/``end_to_end`` turn off the CUDA per-Linear-shape sweep / the
    whole-model rows (their CPU skip rows are still written); ``conv=False`` turns off the conv
    im2col rows (eligibility is still reported, status ``"disabled"``).
    """
    from certkit.macs import count_macs
    from certkit.masks import build_masks, format_pattern, parse_pattern

    k, n = parse_pattern(pattern)
    if (k, n) != (2, 4):
        raise ValueError(f"pattern == {pattern!r}: PyTorch semi-structured kernels run 2:4 only "
                         "(ANCHORS §3.1); other k:n patterns have no native kernel")
    for dt in dtypes:
        if dt not in DTYPES:
            raise ValueError(f"dtype {dt!r} is not one of {sorted(DTYPES)}")
    for b in batches:
        if not isinstance(b, int) or b < 1:
            raise ValueError(f"batch sizes must be positive ints, got {b!r}")
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    model = create_model(model_name, img_size) if model is None else model.eval()
    ishape = input_shape_of(model, img_size)
    if maskset is None:
        maskset = build_masks(model, "magnitude", pattern=pattern)
    validity = validate_all(maskset, k, n)
    macs = count_macs(model, ishape, masks=maskset, pattern=pattern, tome_r=tome_r,
                      name=model_name)
    dense_macs = count_macs(model, ishape, tome_r=tome_r, name=model_name,
                            convention=macs.convention)
    equiv = equivalence_check(model, maskset, ishape)
    # distinct eligible Linear shapes, with the tokens per sample of their first layer
    tokens = {r.name: r.positions for r in macs.rows}
    from certkit.masks._modules import get_module

    shape_info: dict[tuple[int, int], dict] = {}
    for name in maskset.masks:
        mod = get_module(model, name)
        if isinstance(mod, torch.nn.Linear):
            d = shape_info.setdefault((mod.out_features, mod.in_features),
                                      {"layers": [], "tokens": max(1, tokens.get(name, 1))})
            d["layers"].append(name)
    invalid = {nm for nm, v in validity.items() if not v["valid"]}
    cuda = torch.cuda.is_available()
    be_list = list(backends) if backends is not None else (_available_backends() if cuda else
                                                            list(BACKENDS))
    shape_rows: list[dict] = []
    valid_shapes = {}
    for shp, info in shape_info.items():
        bad = [nm for nm in info["layers"] if nm in invalid]
        if bad:
            for dt in dtypes:
                for b in batches:
                    shape_rows.append({"shape": list(shp), "layers": info["layers"],
                                       "tokens": info["tokens"], "dtype": dt, "backend": None,
                                       "batch": b, "status": "aborted",
                                       "reason": "invalid mask: " + "; ".join(
                                           f"{nm}: {validity[nm]['error']}" for nm in bad),
                                       **_null_timing()})
        elif not cuda:
            for dt in dtypes:
                for b in batches:
                    shape_rows.append({"shape": list(shp), "layers": info["layers"],
                                       "tokens": info["tokens"], "dtype": dt, "backend": None,
                                       "batch": b, "status": "skipped", "reason": SKIP_REASON,
                                       **_null_timing()})
        else:
            valid_shapes[shp] = info
    if cuda and shapes and valid_shapes:
        shape_rows += _shape_rows_cuda(valid_shapes, model, maskset, batches, dtypes,
                                       be_list, warmup, repeats)
    if invalid:
        e2e_rows = [{"dtype": dt, "backend": None, "batch": b, "status": "aborted",
                     "reason": f"invalid masks on {sorted(invalid)}", **_null_timing()}
                    for dt in dtypes for b in batches]
    elif not cuda:
        e2e_rows = [{"dtype": dt, "backend": None, "batch": b, "status": "skipped",
                     "reason": SKIP_REASON, **_null_timing()} for dt in dtypes for b in batches]
    elif end_to_end:
        e2e_rows = _e2e_rows_cuda(model, maskset, ishape, batches, dtypes, be_list, warmup, repeats)
    else:
        e2e_rows = []
    conv_block = _conv_section(model, maskset, ishape, validity, batches, dtypes, be_list, warmup,
                               repeats, enabled=conv, cuda=cuda)
    ok_e2e = [r for r in e2e_rows if r["status"] == "ok"]
    best = max(ok_e2e, key=lambda r: r["speedup"]) if ok_e2e else None
    return {
        "model": model_name, "input_shape": list(ishape), "pattern": format_pattern(k, n),
        "batches": list(batches), "dtypes": list(dtypes), "repeats": repeats, "warmup": warmup,
        "backends": be_list, "environment": _env(),
        "timing": ("CUDA events, median of repeats after warm-up; dense and sparse in the same "
                   "dtype" if cuda else None),
        "skip": None if cuda else {"status": "skipped", "reason": SKIP_REASON,
                                   "dense_throughput": None, "sparse_throughput": None,
                                   "speedup": None},
        "mask_validation": {"all_valid": not invalid, "layers": validity,
                            "skipped_layers": maskset.params.get("skipped", {})},
        "equivalence": equiv,
        "tolerances": {"output_rtol": OUTPUT_RTOL, "e2e_rtol": E2E_RTOL,
                       "equivalence": {"rtol": EQUIV_RTOL, "atol": EQUIV_ATOL}},
        "macs": macs.to_dict(), "macs_dense": dense_macs.to_dict(),
        "mac_table": macs.table(),
        "shape_rows": shape_rows, "end_to_end_rows": e2e_rows,
        "best_end_to_end": best, "conv_im2col": conv_block,
    }


def format_summary(res: dict) -> str:
    """Human-readable summary: MAC table, validation, equivalence, timing rows."""
    mv, eq = res["mask_validation"], res["equivalence"]
    n_bad = sum(not v["valid"] for v in mv["layers"].values())
    lines = [res["mac_table"],
             f"masks: {len(mv['layers'])} layers, {n_bad} invalid "
             f"({'all valid' if mv['all_valid'] else 'INVALID rows aborted'})",
             f"masked-dense equivalence (CPU fp32): {'passed' if eq['passed'] else 'FAILED'} "
             f"(max abs diff {eq['max_abs_diff']:.3g}, rtol {eq['rtol']}, atol {eq['atol']})"]
    if res["skip"] is not None:
        lines.append(f"timing: skipped — {res['skip']['reason']}")
    env = res["environment"]
    if env["gpu"]:
        lines.append(f"GPU {env['gpu']} (sm {env['capability']}), torch {env['torch']}, CUDA "
                     f"{env['cuda']}, cuSPARSELt {env['cusparselt']}")
    for title, rows, keys in (("per-shape", res["shape_rows"], ("shape", "tokens")),
                              ("end-to-end", res["end_to_end_rows"], ())):
        timed = [r for r in rows if r["status"] != "skipped"]
        if not timed:
            continue
        lines.append(f"{title} rows:")
        for r in timed:
            head = " ".join(f"{k}={r[k]}" for k in keys)
            if r["status"] == "ok":
                lines.append(f"  {head} {r['dtype']} {r['backend']} b={r['batch']}: dense "
                             f"{r['dense_ms']:.3f} ms sparse {r['sparse_ms']:.3f} ms speedup "
                             f"{r['speedup']:.3f}x")
            else:
                lines.append(f"  {head} {r['dtype']} {r['backend']} b={r['batch']}: "
                             f"{r['status']} ({r['reason']})")
    cv = res["conv_im2col"]
    n_el = sum(v["eligible"] for v in cv["layers"].values())
    lines.append(f"conv im2col endpoint: {cv['status']}"
                 + (f" ({cv['reason']})" if cv["reason"] else "")
                 + f"; {n_el} of {len(cv['layers'])} masked convs eligible, {cv['groups']} "
                 "distinct problems")
    n_chk = sum(c["passed"] for c in cv["lowering_checks"])
    if cv["lowering_checks"]:
        lines.append(f"  CPU float64 im2col lowering check: {n_chk}/{len(cv['lowering_checks'])} "
                     f"passed (rtol {cv['lowering_rtol']})")
    for r in cv["rows"]:
        head = f"  {','.join(r['layers'][:2])}{'…' if len(r['layers']) > 2 else ''} {r['shape']}"
        if r["status"] == "ok":
            lines.append(f"{head} {r['dtype']} {r['backend']} b={r['batch']}: dense-im2col "
                         f"{r['dense_ms']:.3f} ms sparse-im2col {r['sparse_ms']:.3f} ms cuDNN "
                         f"{r['cudnn_ms']:.3f} ms speedup {r['speedup']:.3f}x (vs cuDNN "
                         f"{r['speedup_vs_cudnn']:.3f}x)")
        elif r["reason"] != SKIP_REASON:
            lines.append(f"{head}: {r['status']} ({r['reason']})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "bench-2to4", parents=[common],
        help="2:4 semi-structured kernel benchmark + exact dense/sparse MAC table",
        description="Validate 2:4 magnitude masks, check masked-dense equivalence, print the "
        "dense and sparse-execution MAC table (ALGORITHMS §9.4) and, with CUDA, time dense vs "
        "torch.sparse.to_sparse_semi_structured (cuSPARSELt/CUTLASS) per Linear shape and end "
        "to end, and per eligible Conv2d the im2col + 2:4 sparse GEMM endpoint (dense-im2col vs "
        "sparse-im2col, native cuDNN conv as reference). Without CUDA the timing rows are skip "
        "rows (exit 0, no numbers); conv eligibility and the exact im2col lowering are still "
        "checked.",
    )
    p.add_argument("--model", required=True, help="timm model name (random init)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64], metavar="B")
    p.add_argument("--dtype", nargs="+", default=["fp16", "bf16"], choices=sorted(DTYPES))
    p.add_argument("--pattern", default="2:4", metavar="K:N")
    p.add_argument("--out", default=None, metavar="FILE", help="JSON output (sorted keys)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--img-size", type=int, default=None, metavar="N")
    p.add_argument("--tome-r", type=int, default=0, metavar="R",
                   help="ToMe r for the MAC table only (analytic token reduction)")
    p.add_argument("--no-shapes", action="store_true", help="skip the per-Linear-shape sweep")
    p.add_argument("--no-end-to-end", action="store_true", help="skip the whole-model rows")
    p.add_argument("--no-conv", action="store_true",
                   help="skip the conv im2col + 2:4 GEMM rows (eligibility is still reported)")
    p.add_argument("--backend", nargs="+", default=None, choices=list(BACKENDS))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from certkit.cli import _write_json

    res = run_bench(args.model, batches=args.batch, dtypes=args.dtype, pattern=args.pattern,
                    repeats=args.repeats, warmup=args.warmup, img_size=args.img_size,
                    tome_r=args.tome_r, shapes=not args.no_shapes,
                    end_to_end=not args.no_end_to_end, backends=args.backend,
                    conv=not args.no_conv)
    if not args.quiet:
        print(format_summary(res))
    if args.out is not None:
        _write_json(res, args.out)
        if not args.quiet:
            print(f"wrote {args.out}", file=sys.stderr)
    return 0
