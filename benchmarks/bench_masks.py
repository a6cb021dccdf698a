"""Benchmark: CAST 2:4 with permutation alignment on ViT-Base (issue 4, Performance).

1. ``build_masks(model, "cast", calibration=..., pattern="2:4", permute=True)`` on every eligible
   Linear of timm ``vit_base_patch16_224`` (random init, ``pretrained=False``), calibration =
   64 random images in 4 batches of 16, torch threads 2. The whole call is timed (permutation
   search + folding, calibration forward pass, CAST solver); target < 60 s.
2. The kept-score gain of the permutation, from ``MaskSet.params["permutation_scores"]``
   (importance ``|W|``, the default of ``permute_model``): per permuted layer and in total.
3. A plain greedy stripe-swap baseline on the same layers and the same importance (the
   unpermuted ``|W|``), for comparison with certkit's :func:`search_permutation` (also timed
   alone on the same inputs): for each channel position ``i`` in turn, evaluate — by direct
   top-k of the two affected stripes of ``n`` columns, no incremental tricks — swapping it with
   every position ``j`` in another stripe, apply the best swap if it strictly improves the kept
   k:n score; repeat passes until no swap improves, capped by ``--baseline-passes`` and a
   per-layer wall-clock cap ``--baseline-time`` (the cap is reported; with the default 5 s per
   layer the baseline's total time is about that of the certkit search, and its gain is what
   that time buys).

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_masks.py`` (about 2 minutes on 2
cores); ``--no-write`` leaves ``benchmarks/RESULTS.md`` alone.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from certkit.masks import build_masks  # noqa: E402
from certkit.masks import cast as _cast  # noqa: E402,F401  (registers "cast")
from certkit.masks.permutation import DEFAULT_MAX_ITERS, kept_score  # noqa: E402

MODEL = "vit_base_patch16_224"
K, N = 2, 4
N_IMAGES, BATCH = 64, 16
TARGET_S = 60.0
THREADS = 2
SEED = 0
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helper module
from _results import write_section  # noqa: E402


# ------------------------------------------------------------------------------ baseline
def greedy_stripe_swap(importance: torch.Tensor, k: int, n: int, *, max_passes: int = 10,
                       time_limit: float | None = None, dtype: torch.dtype = torch.float32
                       ) -> tuple[torch.Tensor, int, int, bool]:
    """Plain greedy stripe-swap permutation search (the comparison baseline).

    ``importance`` is ``(rows, C)``; stripes are the ``C / n`` groups of ``n`` consecutive
    columns. One pass visits every position ``i``; for each, the kept k:n score of the two
    stripes affected by swapping ``i`` with each position ``j`` of another stripe is recomputed
    by a direct top-k (vectorised over ``j``), and the best swap is applied if it strictly
    improves the total. Stops after a pass without a swap, ``max_passes`` passes, or
    ``time_limit`` seconds.

    Returns ``(perm, passes, swaps, converged)`` with ``perm`` mapping new position -> old
    channel (the convention of :func:`search_permutation`).
    """
    M = importance.detach().to(dtype).clone()
    R, C = M.shape
    G = C // n
    perm = torch.arange(C)
    pos = torch.arange(C)
    stripe_of = pos // n
    slot_of = pos % n
    cur = torch.topk(M.reshape(R, G, n), k, dim=2).values.sum(dim=(0, 2))  # per stripe
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    passes = swaps = 0
    converged = False
    while passes < max_passes:
        passes += 1
        applied = 0
        for i in range(C):
            if deadline is not None and time.perf_counter() > deadline:
                return perm, passes, swaps + applied, False
            a, s = int(stripe_of[i]), int(slot_of[i])
            others = pos[stripe_of != a]
            J = others.numel()
            # stripe a with column i replaced by column j
            A = M[:, a * n:(a + 1) * n].unsqueeze(1).expand(R, J, n).clone()
            A[:, :, s] = M[:, others]
            new_a = torch.topk(A, k, dim=2).values.sum(dim=(0, 2))
            # stripe of j with column j replaced by column i
            sb = stripe_of[others]
            B = M.reshape(R, G, n)[:, sb, :].clone()
            B[:, torch.arange(J), slot_of[others]] = M[:, i:i + 1].expand(R, J)
            new_b = torch.topk(B, k, dim=2).values.sum(dim=(0, 2))
            delta = new_a - cur[a] + new_b - cur[sb]
            best = int(torch.argmax(delta))
            tol = 1e-6 * float(cur[a]) + 1e-12
            if float(delta[best]) <= tol:
                continue
            j, b = int(others[best]), int(sb[best])
            M[:, [i, j]] = M[:, [j, i]]
            perm[[i, j]] = perm[[j, i]]
            cur[a], cur[b] = new_a[best], new_b[best]
            applied += 1
        swaps += applied
        if not applied:
            converged = True
            break
    return perm, passes, swaps, converged


# ------------------------------------------------------------------------------ bench
def _gain(before: float, after: float) -> str:
    return f"{after - before:+.4g} ({100 * (after / before - 1):+.3f}%)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-time", type=float, default=5.0,
                    help="wall-clock cap of the greedy baseline per layer, seconds")
    ap.add_argument("--baseline-passes", type=int, default=10,
                    help="pass cap of the greedy baseline per layer")
    ap.add_argument("--permute-max-iters", type=int, default=None,
                    help="permute_max_iters of build_masks (default: the library default)")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)

    import timm

    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    model = timm.create_model(MODEL, pretrained=False).eval()
    g = torch.Generator().manual_seed(SEED)
    calib = [torch.randn(BATCH, 3, 224, 224, generator=g) for _ in range(N_IMAGES // BATCH)]
    original = {n: p.detach().clone() for n, p in model.named_parameters()
                if n.endswith(".weight") and p.ndim == 2}

    # CAST alone (no permutation) on a copy, to split the total into search vs the rest
    plain = copy.deepcopy(model)
    t0 = time.perf_counter()
    build_masks(plain, "cast", calibration=calib, pattern=f"{K}:{N}")
    t_plain = time.perf_counter() - t0
    del plain

    opts = {} if args.permute_max_iters is None else {
        "permute_max_iters": args.permute_max_iters}
    t0 = time.perf_counter()
    ms = build_masks(model, "cast", calibration=calib, pattern=f"{K}:{N}", permute=True,
                     **opts)
    t_build = time.perf_counter() - t0

    scores = ms.params["permutation_scores"]
    layers = list(scores)
    tot_before = sum(v["before"] for v in scores.values())
    tot_after = sum(v["after"] for v in scores.values())
    n_masked = len(ms.masks)

    # the plain greedy baseline on the same layers and importance
    t_gr, gr_after, gr_passes, gr_swaps, gr_conv = 0.0, 0.0, [], 0, 0
    for name in layers:
        imp = original[name + ".weight"].abs()
        t = time.perf_counter()
        perm, passes, swaps, conv = greedy_stripe_swap(
            imp, K, N, max_passes=args.baseline_passes, time_limit=args.baseline_time)
        t_gr += time.perf_counter() - t
        gr_after += kept_score(imp, K, N, perm)
        gr_passes.append(passes)
        gr_swaps += swaps
        gr_conv += conv

    today = _dt.date.today().isoformat()
    kinds = "/".join(sorted({".".join(x.split(".")[2:]) for x in layers}))
    W = original[layers[0] + ".weight"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"## bench_masks.py — CAST {K}:{N} + permutation, {MODEL} (random init) — {today}",
        "",
        "Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_masks.py`; "
        f"calibration {N_IMAGES} random images ({N_IMAGES // BATCH} batches of {BATCH}).",
        "",
        "```",
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}, {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"1) build_masks(model, 'cast', pattern='{K}:{N}', permute=True): {t_build:.2f} s "
        f"(target < {TARGET_S:.0f} s; ratio to target {t_build / TARGET_S:.2f}); "
        f"{n_masked} masked layers, {len(layers)} permuted/searched ({kinds} "
        f"{tuple(W.shape)}), skipped from permutation: {len(ms.params['permutation_skipped'])}",
        f"2) permutation kept |W| 2:4 score (sum over {len(layers)} layers): "
        f"before {tot_before:.6g}, after {tot_after:.6g}, gain {_gain(tot_before, tot_after)}",
        "   per layer gain %: " + ", ".join(
            f"{x.split('.')[1]}:{100 * (v['after'] / v['before'] - 1):.3f}"
            for x, v in scores.items()),
        "3) same layers, same importance |W| (unpermuted):",
        f"   certkit permutation (permute_max_iters="
        f"{args.permute_max_iters or DEFAULT_MAX_ITERS}): ~{t_build - t_plain:.2f} s "
        f"(= total - CAST without permute, {t_plain:.2f} s), gain "
        f"{_gain(tot_before, tot_after)}",
        f"   plain greedy stripe-swap baseline (cap {args.baseline_time:g} s/layer, "
        f"{args.baseline_passes} passes): {t_gr:.2f} s, gain {_gain(tot_before, gr_after)}; "
        f"{gr_swaps} swaps, passes per layer {gr_passes}, converged {gr_conv}/{len(layers)}",
        "```",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_masks", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
