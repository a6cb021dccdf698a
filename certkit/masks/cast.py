r"""CAST: certificate-inspired k:n structured projection (ALGORITHMS §7.1–7.7, §7.9).

For every eligible layer (matrix view ``W ∈ R^{M×N}``, ALGORITHMS §1.7; groups of ``n``
consecutive input columns per row, §7.2) CAST picks, independently for every (row i, group g)
cell, the k:n pattern ``m`` that minimises

.. math::

    c_{i,g}(m) + α_{ser}·κ_ℓ·\bar c_{i,g}·|m − s_{i,g}|_1 ,\qquad
    c_{i,g}(m) = r(m)^T C_g\, r(m),\quad r(m) = (1 − m) ⊙ u_{i,g},

with ``C_g = (1/R)·Σ_rows h_g h_gᵀ`` the uncentered second moment of the group's layer inputs
over the calibration rows (§7.4–7.5), ``u`` the source values (§7.3), ``s`` the source mask and
``c̄`` the per-cell mean cost over the candidate list (§7.6, implemented form). Ties go to the
first candidate in ``itertools.combinations`` order (§7.7).

**What the cost is — and is not.** ``c_{i,g}(m)`` is the mean squared contribution of the
removed slots to output channel i; summed over cells it is the block-diagonal approximation of
``E_rows ‖R h‖₂²`` (cross-group blocks dropped, §7.5). It is an **ℓ2 surrogate** of the ℓ∞
data-path budget ``B_T(R) = (2/|T|)·Σ_s L_s‖R ψ1(s)‖_∞`` of M-Lemma 5.1 — not a theorem of the
paper, and ``L_s`` is ignored (THEORY §0.1: the repository's "Corollary 5.5" label for
``rᵀ C r`` is not a result of the current paper; ALGORITHMS §7.5 labels it PROXY). A low
CAST cost certifies nothing; evaluate the real budget with :mod:`certkit.budget` on
:meth:`~certkit.masks.MaskSet.removed` (or on ``P`` of :func:`restoration_split`).

**Source values and free restoration (§7.3).** The model's current weights are the source
``W^src`` (``M_src = W^src ≠ 0``). With ``dense`` (the dense pretrained weights, in the model's
current — e.g. already permuted — coordinates) and ``free_restoration=True``::

    u = W^src where M_src = 1;  W^dense where M_src = 0;   (u = W^src for layers without
                                                              a dense entry)

The search scores every candidate with ``u``, so a pattern may keep a slot that the source had
zeroed ("restoration inside a paid group": the group pays for k slots anyway). Precisely:

* the **mask** ``M = m*`` (what :class:`~certkit.masks.MaskSet` stores) is k:n; it may keep
  source-zero slots;
* the **values** to deploy are ``W′ = M ⊙ u`` (:func:`cast_values`, :func:`materialize`):
  kept source slots keep their source (fine-tuned) value, restored slots take the dense value.
  :func:`~certkit.masks.apply_masks` alone multiplies the *current* weights by ``M`` and would
  leave restored slots at 0 — call :func:`materialize` first;
* ``MaskSet.params["restored"][layer] = #{M = 1, M_src = 0, u ≠ 0}`` — the spec's count
  #{M = 1 and M_src = 0}, except that a slot kept *without* a value (no dense weights, or a
  dense value of exactly 0) is not called restored; such slots are counted in
  ``params["kept_zero"][layer] = #{M = 1, u = 0}`` (the "bad groups" of later zero-based
  audits, §7.7). ``params["restoration_candidates"][layer] = #{M_src = 0}`` is the
  repository's ``free_restoration_count``;
* the M-Thm 5.5 split ``A = S + Q + P`` (pairwise disjoint) is :func:`restoration_split`:
  ``S = u ⊙ M ⊙ M_src`` (kept source entries), ``Q = u ⊙ M ⊙ (1 − M_src)`` (restored, dense
  values), ``P = u ⊙ (1 − M)`` (finally removed). The theorem then applies to the slot-value
  matrix ``A = U`` (THEORY T14), which is neither the dense nor the source layer.

Without ``dense`` (or with ``free_restoration=False``) ``u = W^src`` and nothing is restored
(a chosen pattern may then keep a zero slot; the mask stays exactly k:n).

**CAST-conv (§7.9).** Conv2d layers use the im2col view: groups run along the flattened
``C_in·k_h·k_w`` axis and ``C_g`` comes from the unfolded patches
(:mod:`certkit.masks.calibration`).

**Layers.** Eligible: ``nn.Linear`` / ``nn.Conv2d`` (groups 1, zero padding) that can carry
k:n (:func:`~certkit.masks.nm_ineligibility`). The patch embedding / stem is skipped by default
(ALGORITHMS §11 item 13: "never project patch-embed"; ``include_patch_embed=True`` overrides);
the head is projected whenever eligible (§11 item 13). Every skipped layer is listed with its
reason in ``params["skipped"]``.

Not implemented (options of §7.5/§7.8): the ``linf``/percentile costs, the Fisher-KD term, and
permutation alignment (:mod:`certkit.masks.permutation`, §7.8).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch

from .._validation import check_int, check_scalar
from ._modules import dense_weight, get_module, matrix_view, weight_parameter
from .build import register_method
from .calibration import capture_ineligibility, collect_input_stats
from .maskset import MaskSet
from .nm import _check_kn, format_pattern
from .selection import is_embed, nm_ineligibility

__all__ = [
    "COSTS",
    "DEFAULT_ALPHA_SER",
    "cast_select",
    "cast_values",
    "candidate_patterns",
    "group_cost",
    "materialize",
    "restoration_split",
    "source_values",
]

#: Implemented cost functions (§7.5): only the ℓ2 covariance cost of every reported row.
COSTS = ("l2",)
#: Default α_ser (§7.6): 0.5, the value of the SER-source k:n rows (ViT-B 6:12, ViT-L 8:16);
#: a no-op for dense sources (every k:n pattern is at Hamming distance n − k from all-ones).
DEFAULT_ALPHA_SER = 0.5
#: Exhaustive search up to this many candidates (§7.7 DEFAULT), otherwise seeded sampling.
MAX_EXHAUSTIVE = 20_000
#: Sampled candidate list size and seed above :data:`MAX_EXHAUSTIVE` (§7.7 DEFAULT).
N_SAMPLES, SAMPLE_SEED = 10_000, 42
#: Cells × candidates evaluated per chunk of the solver (memory bound, §7.5).
CHUNK_ELEMS = 1 << 22
_CBAR_FLOOR = 1e-12


# ---------------------------------------------------------------------------- candidates
def candidate_patterns(k: int, n: int, *, max_exhaustive: int = MAX_EXHAUSTIVE,
                       n_samples: int = N_SAMPLES, seed: int = SAMPLE_SEED
                       ) -> tuple[torch.Tensor, bool]:
    """The candidate list 𝓜 of §7.2/§7.7 as a ``(P, n)`` bool tensor (True = kept).

    Exhaustive (``itertools.combinations`` order of the kept index tuple) when
    ``C(n, k) <= max_exhaustive``; otherwise ``n_samples`` independent uniform k-subsets (a
    seeded random permutation of ``0..n−1``, first k kept; duplicates kept), the same list for
    every layer. Returns ``(candidates, exhaustive)``.
    """
    k, n = _check_kn(k, n)
    total = math.comb(n, k)
    if total <= check_int(max_exhaustive, "max_exhaustive", min_val=1):
        cand = torch.zeros(total, n, dtype=torch.bool)
        for p, kept in enumerate(itertools.combinations(range(n), k)):
            cand[p, list(kept)] = True
        return cand, True
    n_samples = check_int(n_samples, "n_samples", min_val=1)
    g = torch.Generator().manual_seed(int(seed))
    cand = torch.zeros(n_samples, n, dtype=torch.bool)
    for p in range(n_samples):
        cand[p, torch.randperm(n, generator=g)[:k]] = True
    return cand, False


# ---------------------------------------------------------------------------- source values
def source_values(w_src: torch.Tensor, w_dense: torch.Tensor | None = None, *,
                  free_restoration: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, M_src)`` of §7.3: ``M_src = W^src ≠ 0``; ``u = W^src`` on ``M_src``, ``W^dense``
    elsewhere when ``free_restoration`` and ``w_dense`` is given, else ``W^src``."""
    w = w_src.detach()
    m_src = w != 0
    if w_dense is None or not free_restoration:
        return w.clone(), m_src
    d = w_dense.detach().to(device=w.device, dtype=w.dtype)
    if tuple(d.shape) != tuple(w.shape):
        raise ValueError(f"dense weight has shape {tuple(d.shape)}, the source weight "
                         f"{tuple(w.shape)}")
    return torch.where(m_src, w, d), m_src


def _dense_for(dense, name: str) -> torch.Tensor | None:
    """Dense weight of layer ``name`` from a module, or a mapping keyed by module name or by
    state-dict key ``name + '.weight'``; None when absent."""
    if dense is None:
        return None
    if isinstance(dense, torch.nn.Module):
        try:
            return dense_weight(get_module(dense, name))
        except ValueError:
            return None
    if isinstance(dense, Mapping):
        t = dense.get(name, dense.get(name + ".weight"))
        return None if t is None else torch.as_tensor(t).detach()
    raise TypeError(f"dense must be None, an nn.Module or a mapping name -> tensor, got "
                    f"{type(dense).__name__}")


# ---------------------------------------------------------------------------- cost & solver
def _grouped64(t: torch.Tensor, n: int, what: str, dtype=torch.float64) -> torch.Tensor:
    m = matrix_view(t)
    if m.shape[1] % n:
        raise ValueError(f"{what} has input width {m.shape[1]}, which n == {n} does not divide")
    return m.to(dtype).reshape(m.shape[0], m.shape[1] // n, n)


def _check_cov(group_cov: torch.Tensor, G: int, n: int) -> torch.Tensor:
    C = torch.as_tensor(group_cov).detach()
    if tuple(C.shape) != (G, n, n):
        raise ValueError(f"group_cov must have shape ({G}, {n}, {n}) (one n×n block per group), "
                         f"got {tuple(C.shape)}")
    if not bool(torch.isfinite(C).all()):
        raise ValueError("group_cov contains NaN or Inf")
    return C


def group_cost(u: torch.Tensor, mask: torch.Tensor, group_cov: torch.Tensor) -> float:
    r"""The CAST layer objective ``Σ_{i,g} r_{i,g}ᵀ C_g r_{i,g}`` with ``r = (1 − M) ⊙ u``.

    Works for any mask (CAST, magnitude k:n, ...), so objectives can be compared. ``n`` is
    taken from ``group_cov`` of shape ``(G, n, n)``. An ℓ2 surrogate, not a certificate
    (module docstring).
    """
    C = torch.as_tensor(group_cov).detach()
    if C.ndim != 3 or C.shape[1] != C.shape[2]:
        raise ValueError(f"group_cov must have shape (G, n, n), got {tuple(C.shape)}")
    n = C.shape[1]
    U = _grouped64(u, n, "u")
    keep = _grouped64(mask, n, "mask")
    C = _check_cov(C, U.shape[1], n).to(device=U.device, dtype=torch.float64)
    r = (1.0 - keep.to(U.device)) * U
    return float(torch.einsum("iga,gab,igb->", r, C, r))


def cast_select(u: torch.Tensor, group_cov: torch.Tensor | None, k: int, n: int, *,
                source_mask: torch.Tensor | None = None, alpha_ser: float = DEFAULT_ALPHA_SER,
                kappa: float = 1.0, candidates: torch.Tensor | None = None,
                dtype: torch.dtype = torch.float32, chunk_elems: int = CHUNK_ELEMS
                ) -> tuple[torch.Tensor, float]:
    r"""Per-cell CAST decision (§7.5–7.7) for one layer: returns ``(mask, objective)``.

    Parameters
    ----------
    u : torch.Tensor
        Source values (§7.3), shaped like the weight (matrix view ``M × N``, ``n | N``).
    group_cov : torch.Tensor, shape (N/n, n, n), or None
        ``C_g`` (:attr:`~certkit.masks.calibration.LayerStats.group_cov`). None = no
        activations were captured: fallback to the top-k ``|u|`` per group, ties to the lower
        slot index (§7.7).
    k, n : int
        Pattern, ``1 <= k < n``.
    source_mask : torch.Tensor of bool, optional
        ``M_src`` for the α_ser prior (§7.6); None or ``alpha_ser == 0`` disables the prior.
    alpha_ser : float, default 0.5
        Weight of the Hamming prior (>= 0).
    kappa : float, default 1.0
        Layer factor ``κ_ℓ`` of the prior (1 on the k:n path).
    candidates : torch.Tensor of bool, shape (P, n), optional
        Candidate list (default :func:`candidate_patterns`).
    dtype : torch.dtype, default float32
        Working precision of the GEMM solver: float32 as in the repository (§7.5, about twice
        as fast as float64 on CPU); pass float64 for exact comparisons (tests).
    chunk_elems : int
        Cells × candidates evaluated at once (never the full ``[M, G, P]`` tensor).

    Returns
    -------
    mask : torch.Tensor of bool
        Shaped like ``u``, exactly k kept per group.
    objective : float
        ``Σ_{i,g} c_{i,g}(m*)`` (without the prior); 0.0 for the fallback.

    Notes
    -----
    Exact GEMM solver of §7.5: with ``A = (u uᵀ) ⊙ C_g`` and ``z = 1 − m``,
    ``c(m) = zᵀ A z = Σ_{a,b} A_ab·z_a z_b``, one ``(cells × n²)·(n² × P)`` product per chunk
    (the ordered-pair form of §7.5's ``Σ_{a≤b} ω_ab A_ab z_a z_b``: the same sum, with
    contiguous operands instead of a triangle gather). The prior uses the per-cell
    mean cost over the searched list, clamped at 1e-12 (§7.6 implemented form).
    """
    k, n = _check_kn(k, n)
    alpha = check_scalar(alpha_ser, "alpha_ser", min_val=0.0)
    kappa = check_scalar(kappa, "kappa", min_val=0.0)
    chunk_elems = check_int(chunk_elems, "chunk_elems", min_val=1)
    if not isinstance(u, torch.Tensor) or u.ndim < 2:
        raise ValueError("u must be a weight-shaped tensor with at least 2 dimensions")
    if not bool(torch.isfinite(u).all()):
        raise ValueError("u contains NaN or Inf")
    dev = u.device
    U = _grouped64(u, n, "u", dtype)
    M, G, _ = U.shape
    if group_cov is None:  # fallback: top-k |u| per group, ties -> lower slot index kept
        order = torch.sort(-U.abs(), dim=2, stable=True).indices[..., :k]
        keep = torch.zeros(U.shape, dtype=torch.bool, device=dev)
        keep.scatter_(2, order, True)
        return keep.reshape(u.shape), 0.0
    C = _check_cov(group_cov, G, n).to(device=dev, dtype=dtype)
    if candidates is None:
        candidates, _ = candidate_patterns(k, n)
    cand = torch.as_tensor(candidates).to(device=dev)
    if cand.dtype != torch.bool or cand.ndim != 2 or cand.shape[1] != n \
            or bool((cand.sum(1) != k).any()):
        raise ValueError(f"candidates must be a (P, {n}) bool tensor with exactly {k} True per "
                         "row")
    P = cand.shape[0]
    # the prior is a no-op (constant per cell) when the source keeps every slot (§7.6)
    use_prior = alpha > 0 and source_mask is not None and not bool(source_mask.all())
    if use_prior:
        S = _grouped64(source_mask.to(dev) != 0, n, "source_mask", dtype)
    # Φ over all n² ordered pairs (a, b): Φ[(a,b), p] = z_p[a]·z_p[b]; the symmetric sum over
    # ordered pairs equals the triangle form Σ_{a≤b} ω_ab·A_ab·z_a z_b of §7.5.
    z = (~cand).to(dtype)
    phi = (z[:, :, None] * z[:, None, :]).reshape(P, n * n).T.contiguous()   # (n², P)
    cand_f = cand.to(dtype)
    rows = max(1, chunk_elems // (G * max(P, n * n)))             # output rows per chunk
    best = torch.empty(M, G, dtype=torch.long, device=dev)
    objective = 0.0
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        uc = U[r0:r1]                                               # (r, G, n)
        A = (uc[..., :, None] * uc[..., None, :]).mul_(C)           # (r, G, n, n)
        costs = A.reshape(-1, n * n) @ phi                          # (r·G, P)
        total = costs
        if use_prior:
            s = S[r0:r1].reshape(-1, n)
            cbar = costs.mean(dim=1).clamp_min(_CBAR_FLOOR)
            ham = k + s.sum(dim=1, keepdim=True) - 2.0 * (s @ cand_f.T)
            total = costs + (alpha * kappa) * cbar[:, None] * ham
        arg = torch.argmin(total, dim=1)                           # first minimum in list order
        best[r0:r1] = arg.reshape(r1 - r0, G)
        objective += float(costs.gather(1, arg[:, None]).sum())
    keep = cand[best].reshape(M, G, n)
    return keep.reshape(u.shape), objective


# ---------------------------------------------------------------------------- builder
def _kappas(weights: dict[str, torch.Tensor], density_scale: bool) -> dict[str, float]:
    """κ_ℓ of §7.6: 1, or clip(d_ℓ / d̄, 0.25, 4) with d_ℓ the source nonzero fraction."""
    if not density_scale:
        return dict.fromkeys(weights, 1.0)
    dens = {name: float((w != 0).sum()) / w.numel() for name, w in weights.items()}
    mean = sum(dens.values()) / len(dens)
    if mean <= 0:
        return dict.fromkeys(weights, 1.0)
    return {name: min(4.0, max(0.25, d / mean)) for name, d in dens.items()}


@register_method("cast", description="CAST certificate-inspired k:n projection (l2 covariance "
                 "cost, alpha_ser prior, free restoration, conv via im2col)",
                 spec="ALGORITHMS §7.1-7.7, §7.9")
def build_cast(model, layers, *, calibration=None, sparsity=None, pattern=None,
               alpha_ser: float = DEFAULT_ALPHA_SER, dense=None, free_restoration: bool = True,
               cost: str = "l2", density_scale: bool = False, include_patch_embed: bool = False,
               max_batches: int | None = None, rows_per_call: int | None = None,
               seed: int = 0, max_exhaustive: int = MAX_EXHAUSTIVE,
               n_samples: int = N_SAMPLES, sample_seed: int = SAMPLE_SEED,
               dtype: torch.dtype = torch.float32) -> MaskSet:
    """CAST k:n masks for the selected layers (module docstring; ALGORITHMS §7).

    Parameters
    ----------
    calibration : iterable of input batches
        Required; one forward pass captures every eligible layer's inputs (§7.4).
    sparsity : None
        Must be None: the pattern fixes the sparsity (1 − k/n).
    pattern : (k, n)
        Required; any ``1 <= k < n``.
    alpha_ser : float, default 0.5
        Hamming prior weight (§7.6); a no-op for dense sources.
    dense : nn.Module or mapping, optional
        Dense pretrained weights for free restoration (§7.3), by module name or state-dict
        key, in the model's current coordinates; through ``build_masks(..., permute=True)``
        give them in the original coordinates (mapped by
        :func:`~certkit.masks.build.permute_dense`).
    free_restoration : bool, default True
        Use dense values for source-zero slots (only with ``dense``).
    cost : {"l2"}
        §7.5 cost (ℓ2 surrogate; linf/percentile/Fisher are not implemented).
    density_scale : bool, default False
        Layer density factor κ_ℓ of the 2:4 path (§7.6); False = the k:n path (κ = 1).
    include_patch_embed : bool, default False
        Project the patch embedding / stem too (§11 item 13 default: never).
    max_batches, rows_per_call, seed
        Calibration options (:func:`~certkit.masks.calibration.collect_input_stats`).
    max_exhaustive, n_samples, sample_seed
        Candidate enumeration vs sampling (§7.7).
    dtype : torch.dtype, default float32
        Solver precision (:func:`cast_select`); calibration statistics are always float64.
    """
    if calibration is None:
        raise ValueError("calibration is None: cast is data-aware and needs an iterable of "
                         "input batches (ALGORITHMS §7.4)")
    if sparsity is not None:
        raise ValueError("cast takes pattern ('k:n'), not sparsity: the pattern fixes the "
                         "sparsity of every projected layer to 1 - k/n")
    if pattern is None:
        raise ValueError("cast needs pattern, e.g. '2:4', '6:12' or '8:16' (any k < n)")
    k, n = _check_kn(*pattern)
    if cost not in COSTS:
        raise ValueError(f"cost == {cost!r}, must be one of {COSTS} (the linf/percentile and "
                         "Fisher-KD options of ALGORITHMS §7.5 are not implemented)")
    alpha = check_scalar(alpha_ser, "alpha_ser", min_val=0.0)
    if not isinstance(free_restoration, bool):
        raise TypeError("free_restoration must be a bool")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype == {dtype}, must be torch.float32 or torch.float64")
    skipped, use = {}, {}
    for name, module in layers.items():
        reason = capture_ineligibility(module) or nm_ineligibility(module, k, n)
        if reason is None and not include_patch_embed and is_embed(name):
            reason = ("patch embedding / stem: never projected by default (ALGORITHMS §11 "
                      "item 13); pass include_patch_embed=True")
        if reason is not None:
            skipped[name] = reason
        else:
            use[name] = module
    if not use:
        raise ValueError(f"no selected layer can carry a {k}:{n} CAST pattern: {skipped}")
    stats = collect_input_stats(model, use, calibration, group_size=n,
                                max_batches=max_batches, rows_per_call=rows_per_call, seed=seed)
    cand, exhaustive = candidate_patterns(k, n, max_exhaustive=max_exhaustive,
                                          n_samples=n_samples, seed=sample_seed)
    weights = {name: dense_weight(m) for name, m in use.items()}
    kappas = _kappas(weights, density_scale)
    masks, restored, kept_zero, cands_count, objective = {}, {}, {}, {}, {}
    fallback, has_dense = [], {}
    for name, w in weights.items():
        wd = _dense_for(dense, name)
        if wd is not None and tuple(wd.shape) != tuple(w.shape):
            raise ValueError(f"dense weight of layer {name!r} has shape {tuple(wd.shape)}, the "
                             f"model's {tuple(w.shape)}")
        has_dense[name] = wd is not None
        u, m_src = source_values(w, wd, free_restoration=free_restoration)
        st = stats[name]
        cov = st.group_cov if st.n_rows > 0 else None
        if cov is None:
            fallback.append(name)
        mask, obj = cast_select(u, cov, k, n, source_mask=m_src, alpha_ser=alpha,
                                kappa=kappas[name], candidates=cand.to(w.device), dtype=dtype)
        masks[name] = mask
        restored[name] = int((mask & ~m_src & (u != 0)).sum())
        kept_zero[name] = int((mask & (u == 0)).sum())
        cands_count[name] = int((~m_src).sum())
        objective[name] = obj
    params = {
        "pattern": format_pattern(k, n), "k": k, "n": n, "cost": cost, "alpha_ser": alpha,
        "density_scale": density_scale, "kappa": kappas,
        "free_restoration": free_restoration,
        "restoration_source": "dense" if dense is not None and free_restoration else "none",
        "dense_layers": [nm for nm, v in has_dense.items() if v],
        "restored": restored, "kept_zero": kept_zero, "restoration_candidates": cands_count,
        "objective": objective, "fallback": fallback,
        "n_calibration_rows": {nm: stats[nm].n_rows for nm in use},
        "candidates": {"count": int(cand.shape[0]), "exhaustive": exhaustive},
        "tie_break": "first_candidate_combinations_order", "skipped": skipped,
        "dtype": str(dtype).replace("torch.", ""),
    }
    return MaskSet(masks, "cast", params)


# ---------------------------------------------------------------------------- materialization
def _layer_u(model, maskset: MaskSet, name: str, dense, free_restoration):
    if free_restoration is None:
        free_restoration = bool(maskset.params.get("free_restoration", True))
    if maskset.params.get("restoration_source") == "dense" and dense is None:
        raise ValueError("the MaskSet was built with dense weights (free restoration); pass "
                         "the same dense weights as `dense`")
    w = dense_weight(get_module(model, name))
    mask = maskset.masks[name].to(w.device)
    if tuple(mask.shape) != tuple(w.shape):
        raise ValueError(f"mask of layer {name!r} has shape {tuple(mask.shape)}, the module's "
                         f"weight {tuple(w.shape)}")
    u, m_src = source_values(w, _dense_for(dense, name), free_restoration=free_restoration)
    return u, m_src, mask


def cast_values(model: torch.nn.Module, maskset: MaskSet, dense=None, *,
                free_restoration: bool | None = None) -> dict[str, torch.Tensor]:
    """Projected weights ``W′ = M ⊙ u`` per layer (§7.3, §7.7); the model is not modified.

    ``model`` must hold the *source* weights the masks were built from, ``dense`` the same
    dense weights (``free_restoration`` defaults to the MaskSet's setting).
    """
    out = {}
    for name in maskset.masks:
        u, _, mask = _layer_u(model, maskset, name, dense, free_restoration)
        out[name] = torch.where(mask, u, torch.zeros((), dtype=u.dtype, device=u.device))
    return out


def materialize(model: torch.nn.Module, maskset: MaskSet, dense=None, *,
                free_restoration: bool | None = None) -> torch.nn.Module:
    """Write ``W′ = M ⊙ u`` into the model's weights in place (restored slots get their dense
    values) and return the model. Afterwards ``weight ≠ 0 ⊆ M``; use
    :func:`~certkit.masks.apply_masks` / frozen-mask fine-tuning with ``maskset`` as usual."""
    values = cast_values(model, maskset, dense, free_restoration=free_restoration)
    with torch.no_grad():
        for name, v in values.items():
            weight_parameter(get_module(model, name)).copy_(v)
    return model


def restoration_split(model: torch.nn.Module, maskset: MaskSet, dense=None, *,
                      free_restoration: bool | None = None
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The M-Thm 5.5 prune–restore split ``(S, Q, P)`` of every layer (THEORY §2.2.5, T14).

    ``S = u ⊙ M ⊙ M_src`` (kept source entries), ``Q = u ⊙ M ⊙ ¬M_src`` (restored entries with
    their dense values), ``P = u ⊙ ¬M`` (finally removed). Supports are pairwise disjoint and
    ``S + Q + P = u``, the slot-value matrix the theorem applies to; ``S + Q = W′``.
    """
    out = {}
    for name in maskset.masks:
        u, m_src, mask = _layer_u(model, maskset, name, dense, free_restoration)
        zero = torch.zeros((), dtype=u.dtype, device=u.device)
        S = torch.where(mask & m_src, u, zero)
        Q = torch.where(mask & ~m_src, u, zero)
        P = torch.where(~mask, u, zero)
        out[name] = (S, Q, P)
    return out
