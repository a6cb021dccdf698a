r"""The four audit figures (THEORY §5.3 analogs), as pure ``data_*`` + ``plot_*`` pairs.

Each figure is split into

* ``data_<slug>(report, ...) -> dict`` — pure, testable extraction of what is plotted;
* ``plot_<slug>(data) -> matplotlib.figure.Figure`` — drawing only.

Figures are created with :class:`matplotlib.figure.Figure` on an Agg canvas (no ``pyplot``, no
global state). Degenerate input (no variants, all-zero budgets, no fitted MP, empty margins)
yields a figure that says "no data" instead of raising.

=======================  ==================================================================
slug                     content
=======================  ==================================================================
``budget_bars``          per variant and layer: B_T(R_ℓ) vs the penalty λ2‖R‖²_F + λ1‖R‖₁
``mp_fits``              ESD histograms of WᵀW/rows with the fitted MP density and λ₊
``margin_histogram``     |Δ_true(s)| against the per-sample threshold 2η_s, flips highlighted
``sigma_budget_scatter`` σ₊(ℓ) vs B_T(R_ℓ) (log–log), with the Trap-T12 proxy as hollow markers
=======================  ==================================================================
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from certkit.rmt import mp_pdf

__all__ = [
    "FIGURES",
    "FIGURE_SLUGS",
    "data_budget_bars",
    "plot_budget_bars",
    "data_mp_fits",
    "plot_mp_fits",
    "data_margin_histogram",
    "plot_margin_histogram",
    "data_sigma_budget_scatter",
    "plot_sigma_budget_scatter",
    "figure_png",
    "render_figures",
    "pearson_log",
]

#: Most panels of the MP-fit small multiples.
MAX_MP_PANELS = 16
#: Label of the Trap-T12 op-norm proxy wherever it is drawn.
PROXY_LABEL = "T12 proxy (not a bound)"
_DPI = 110
_C_CERT = "#1f77b4"
_C_EST = "#9ecae1"
_C_PEN = "#8c8c8c"
_C_BAD = "#d62728"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    """``x`` as a finite float, else None (bools are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _pos(x: Any) -> float | None:
    v = _num(x)
    return v if v is not None and v > 0 else None


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11,
            color="#555555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _no_data_figure(title: str, message: str = "no data") -> Figure:
    fig = _figure(6.0, 2.5)
    ax = fig.add_subplot()
    _no_data(ax, message)
    ax.set_title(title, fontsize=10)
    return fig


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1):]


def pearson_log(x: Sequence[Any], y: Sequence[Any]) -> tuple[float | None, int]:
    """Pearson correlation of ``log x`` and ``log y`` over pairs that are both positive and finite.

    Parameters
    ----------
    x, y : sequence of float or None

    Returns
    -------
    (float or None, int)
        The correlation (None with fewer than 3 usable pairs or a constant coordinate) and the
        number of pairs used.
    """
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if _pos(a) is not None and _pos(b) is not None]
    n = len(pairs)
    if n < 3:
        return None, n
    lx = np.log([p[0] for p in pairs])
    ly = np.log([p[1] for p in pairs])
    sx, sy = lx.std(), ly.std()
    if sx <= 0 or sy <= 0:
        return None, n
    r = float(np.mean((lx - lx.mean()) * (ly - ly.mean())) / (sx * sy))
    return max(-1.0, min(1.0, r)), n


def _log_floor(values: Sequence[float | None]) -> float | None:
    """A floor for log axes: a decade below the smallest positive value (None if there is none)."""
    pos = [v for v in values if v is not None and v > 0]
    return min(pos) / 10.0 if pos else None


def _tidy_log_axis(axis) -> None:
    """Plain ``%.3g`` tick labels on a log axis spanning less than ~1.5 decades, else decades only."""
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi > 0 and math.log10(hi / lo) < 1.5:
        fmt = FuncFormatter(lambda v, _pos: f"{v:.3g}")
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(fmt)
    else:
        axis.set_minor_formatter(NullFormatter())


def figure_png(fig: Figure, *, dpi: int = _DPI) -> bytes:
    """Render a figure to PNG bytes (no timestamp/software metadata, so output is reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# 1. budget bars
# --------------------------------------------------------------------------------------------
def data_budget_bars(report: Mapping) -> dict:
    """Per variant and layer: budget B_T(R_ℓ), its label, the penalty and the status.

    Parameters
    ----------
    report : dict
        A (valid) audit report.

    Returns
    -------
    dict
        ``{"variants": [{"name", "layers": [{"layer", "budget", "penalty", "certified",
        "violated"}]}]}``; non-finite or missing numbers are None.
    """
    out = []
    for v in report.get("variants") or []:
        rows = []
        for layer in v.get("layers") or []:
            b = layer.get("budget") or {}
            rows.append({
                "layer": str(layer.get("name", "?")),
                "budget": _num(b.get("value")),
                "penalty": _num(layer.get("penalty")),
                "certified": bool(b.get("certified")),
                "violated": layer.get("status") == "violated",
            })
        out.append({"name": str(v.get("name", "?")), "layers": rows})
    return {"variants": out}


def plot_budget_bars(data: Mapping) -> Figure:
    """Grouped bars (log y) of B_T(R_ℓ) and λ2‖R‖²_F + λ1‖R‖₁ per layer, one row per variant.

    Budgets resting on an estimated L_s are light and hatched ("estimated"); violated layers
    get a red ✗ and a red tick label. Zero or missing values are written at the bottom.
    """
    title = "Data-path budget vs elastic-net penalty"
    variants = [v for v in data.get("variants", []) if v.get("layers")]
    values = [x for v in variants for r in v["layers"] for x in (r["budget"], r["penalty"])]
    floor = _log_floor(values)
    if not variants or floor is None:
        return _no_data_figure(title, "no data (no layers with a positive budget or penalty)")
    n_max = max(len(v["layers"]) for v in variants)
    fig = _figure(min(20.0, max(6.5, 1.5 + 0.45 * n_max)), 3.0 * len(variants) + 0.6)
    axes = fig.subplots(len(variants), 1, squeeze=False)[:, 0]
    top = max(x for x in values if x is not None and x > 0)
    for ax, v in zip(axes, variants, strict=True):
        rows = v["layers"]
        x = np.arange(len(rows))
        w = 0.38
        ax.set_yscale("log")
        ax.set_ylim(floor / 2.0, top * 8.0)
        for i, r in enumerate(rows):
            b, p = _pos(r["budget"]), _pos(r["penalty"])
            if b is not None:
                ax.bar(x[i] - w / 2, b, w, color=_C_CERT if r["certified"] else _C_EST,
                       hatch=None if r["certified"] else "///", edgecolor=_C_CERT, linewidth=0.6)
            else:
                ax.text(x[i] - w / 2, floor, "0" if r["budget"] == 0 else "n/a", ha="center",
                        va="bottom", fontsize=7)
            if p is not None:
                ax.bar(x[i] + w / 2, p, w, color=_C_PEN, edgecolor="#555555", linewidth=0.6)
            else:
                ax.text(x[i] + w / 2, floor, "0" if r["penalty"] == 0 else "n/a", ha="center",
                        va="bottom", fontsize=7)
            if r["violated"]:
                ax.plot([x[i]], [top * 3.0], marker="x", color=_C_BAD, markersize=8, mew=2)
        ax.set_xticks(x)
        fs = 8 if len(rows) <= 20 else 6
        ax.set_xticklabels([_short(r["layer"]) for r in rows], rotation=45 if len(rows) > 4 else 0,
                           ha="right" if len(rows) > 4 else "center", fontsize=fs)
        for lab, r in zip(ax.get_xticklabels(), rows, strict=True):
            if r["violated"]:
                lab.set_color(_C_BAD)
        n_est = sum(not r["certified"] for r in rows)
        ax.set_title(f"{v['name']}: {len(rows)} layers, {n_est} with an estimated budget", fontsize=10)
        ax.set_ylabel("value (log)")
    handles = [
        Patch(facecolor=_C_CERT, edgecolor=_C_CERT, label=r"$B_T(R_\ell)$ certified"),
        Patch(facecolor=_C_EST, edgecolor=_C_CERT, hatch="///", label=r"$B_T(R_\ell)$ estimated"),
        Patch(facecolor=_C_PEN, edgecolor="#555555", label=r"penalty $\lambda_2\|R\|_F^2+\lambda_1\|R\|_1$"),
        Line2D([], [], marker="x", color=_C_BAD, linestyle="none", mew=2, label="violated"),
    ]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle(title + "\n(budget bar below penalty bar: J decreases — certified only for solid bars)",
                 fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# 2. MP fits
# --------------------------------------------------------------------------------------------
def _hist_ok(hist: Any) -> bool:
    if not isinstance(hist, Mapping):
        return False
    e, d = hist.get("edges"), hist.get("density")
    if not isinstance(e, list) or not isinstance(d, list) or len(e) != len(d) + 1 or len(d) == 0:
        return False
    ev = [_num(v) for v in e]
    dv = [_num(v) for v in d]
    if any(v is None for v in ev + dv):
        return False
    return all(b > a for a, b in zip(ev, ev[1:], strict=False))


def _mp_curve(mp: Mapping, edges: Sequence[float]) -> tuple[list[float], list[float]] | None:
    """Continuous MP(c, σ̂²) density renormalised to mass 1 (the law of the nonzero eigenvalues)."""
    c, s2 = _pos(mp.get("c")), _pos(mp.get("entry_variance"))
    if c is None or s2 is None:
        return None
    lo = s2 * (1.0 - math.sqrt(c)) ** 2
    hi = s2 * (1.0 + math.sqrt(c)) ** 2
    lam = _pos(mp.get("lambda_plus")) or hi
    x0 = min(edges[0], lo)
    x1 = max(edges[-1], lam, hi) * 1.02
    x = np.linspace(max(x0, 0.0), x1, 400)
    x = np.union1d(x, np.linspace(lo, hi, 200))  # resolve the support well
    y = np.asarray(mp_pdf(x, c, s2)) / min(1.0, 1.0 / c)
    return x.tolist(), y.tolist()


def data_mp_fits(report: Mapping, *, max_panels: int = MAX_MP_PANELS) -> dict:
    """Histogram, fitted MP density and λ₊ of (at most ``max_panels``) fitted layers.

    When more layers were fitted, ``max_panels`` of them are chosen evenly over the layer order
    (first and last included) and ``selection`` says so.

    Parameters
    ----------
    report : dict
    max_panels : int, default 16

    Returns
    -------
    dict
        ``{"panels": [{"layer", "layer_type", "edges", "density", "curve_x", "curve_y",
        "lambda_plus", "sigma_plus", "c", "fit_error", "n_spikes", "rows"}], "n_layers",
        "n_fitted", "skipped": [(layer, reason)], "selection": str}``.
    """
    layers = list(report.get("layers") or [])
    fitted, skipped = [], []
    for layer in layers:
        mp = layer.get("mp") or {}
        if mp.get("status") == "fitted" and _hist_ok(mp.get("hist")):
            fitted.append(layer)
        else:
            reason = mp.get("reason") or ("no histogram" if mp.get("status") == "fitted" else "skipped")
            skipped.append((str(layer.get("name", "?")), str(reason)))
    if len(fitted) > max(1, max_panels):
        idx = np.unique(np.round(np.linspace(0, len(fitted) - 1, max(1, max_panels))).astype(int))
        chosen = [fitted[i] for i in idx]
        selection = f"{len(chosen)} of {len(fitted)} fitted layers, evenly spaced in layer order"
    else:
        chosen = fitted
        selection = f"all {len(fitted)} fitted layer(s)"
    panels = []
    for layer in chosen:
        mp = layer["mp"]
        edges = [float(v) for v in mp["hist"]["edges"]]
        curve = _mp_curve(mp, edges)
        panels.append({
            "layer": str(layer.get("name", "?")),
            "layer_type": str(layer.get("layer_type", "")),
            "edges": edges,
            "density": [float(v) for v in mp["hist"]["density"]],
            "curve_x": curve[0] if curve else None,
            "curve_y": curve[1] if curve else None,
            "lambda_plus": _num(mp.get("lambda_plus")),
            "sigma_plus": _num(mp.get("sigma_plus")),
            "c": _num(mp.get("c")),
            "fit_error": _num(mp.get("fit_error")),
            "n_spikes": mp.get("n_spikes"),
            "rows": mp.get("rows"),
        })
    return {"panels": panels, "n_layers": len(layers), "n_fitted": len(fitted), "skipped": skipped,
            "selection": selection}


def plot_mp_fits(data: Mapping) -> Figure:
    """Small multiples: ESD histogram, fitted MP density (line) and edge λ₊ (dashed red)."""
    title = "Marchenko–Pastur fits (estimated)"
    panels = data.get("panels") or []
    if not panels:
        n_sk = len(data.get("skipped") or [])
        return _no_data_figure(title, f"no data (no fitted MP spectrum; {n_sk} layer(s) skipped)")
    n = len(panels)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(3.1 * ncols + 0.4, 2.5 * nrows + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, p in zip(axes, panels, strict=False):
        ax.stairs(p["density"], p["edges"], fill=True, color="#c6dbef", label="ESD of WᵀW/rows")
        ax.stairs(p["density"], p["edges"], color="#6baed6", linewidth=0.6)
        if p["curve_x"] is not None:
            ax.plot(p["curve_x"], p["curve_y"], color="#08306b", linewidth=1.2, label="MP fit")
        if p["lambda_plus"] is not None:
            ax.axvline(p["lambda_plus"], color=_C_BAD, linestyle="--", linewidth=1.0, label="λ₊")
        info = []
        if p["c"] is not None:
            info.append(f"c={p['c']:.3g}")
        if p["fit_error"] is not None:
            info.append(f"err={p['fit_error']:.3g}")
        if isinstance(p["n_spikes"], int):
            info.append(f"spikes={p['n_spikes']}")
        ax.set_title(_short(p["layer"], 34) + "\n" + ", ".join(info), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, loc="upper right")
    n_sk = len(data.get("skipped") or [])
    fig.suptitle(f"{title}: {data.get('selection', '')}"
                 + (f"; {n_sk} layer(s) not fitted" if n_sk else ""), fontsize=10)
    fig.supxlabel("eigenvalue of WᵀW/rows (structural zeros dropped)", fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# 3. margin histogram
# --------------------------------------------------------------------------------------------
def data_margin_histogram(report: Mapping) -> dict:
    """Per variant: |Δ_true(s)|, 2η_s, flips and the at-risk count #{|Δ_true| ≤ 2η_s}.

    Samples whose three entries are not all finite are dropped (and counted in ``dropped``).

    Returns
    -------
    dict
        ``{"variants": [{"name", "abs_margin", "two_eta", "flipped", "n", "n_at_risk", "n_flipped",
        "n_flipped_outside", "dropped"}]}``.
    """
    out = []
    for v in report.get("variants") or []:
        m = v.get("margins") or {}
        tm, te, fl = (list(m.get(k) or []) for k in ("true_margin", "two_eta", "flipped"))
        n = min(len(tm), len(te), len(fl))
        am, tw, ff = [], [], []
        for a, b, f in zip(tm[:n], te[:n], fl[:n], strict=True):
            a, b = _num(a), _num(b)
            if a is None or b is None:
                continue
            am.append(abs(a))
            tw.append(b)
            ff.append(bool(f))
        risk = [a <= b for a, b in zip(am, tw, strict=True)]
        out.append({
            "name": str(v.get("name", "?")),
            "abs_margin": am,
            "two_eta": tw,
            "flipped": ff,
            "n": len(am),
            "n_at_risk": sum(risk),
            "n_flipped": sum(ff),
            "n_flipped_outside": sum(f and not r for f, r in zip(ff, risk, strict=True)),
            "dropped": max(len(tm), len(te), len(fl)) - len(am),
        })
    return {"variants": out}


def _bins(values: list[float]) -> tuple[np.ndarray, bool, float]:
    """Histogram bins for nonnegative data: log-spaced if the positive values span > 2 decades."""
    pos = [v for v in values if v > 0]
    if not pos:
        return np.linspace(0.0, 1.0, 11), False, 0.0
    lo, hi = min(pos), max(pos)
    if hi / lo > 100.0:
        floor = lo / 2.0
        return np.geomspace(floor, hi * 1.05, 31), True, floor
    top = max(values) if max(values) > 0 else 1.0
    return np.linspace(0.0, top * 1.02, 31), False, 0.0


def plot_margin_histogram(data: Mapping) -> Figure:
    """Per variant: histograms of |Δ_true| (flipped in red) and of 2η_s; scatter of both.

    A sample is at risk when |Δ_true(s)| ≤ 2η_s (M-Cor 5.2 / E-Cor 1.3); correctness can only
    flip inside that set.
    """
    title = "True-label margins vs per-sample threshold 2η_s"
    variants = data.get("variants") or []
    if not variants or not any(v["n"] for v in variants):
        return _no_data_figure(title, "no data (no margins recorded)")
    fig = _figure(11.0, 3.0 * len(variants) + 0.6)
    axes = fig.subplots(len(variants), 2, squeeze=False)
    for (ax_h, ax_s), v in zip(axes, variants, strict=True):
        if not v["n"]:
            _no_data(ax_h, f"{v['name']}: no margins")
            _no_data(ax_s)
            continue
        am, tw, ff = np.asarray(v["abs_margin"]), np.asarray(v["two_eta"]), np.asarray(v["flipped"], bool)
        bins, logx, floor = _bins(list(am) + list(tw))
        clip_am = np.maximum(am, floor) if logx else am
        clip_tw = np.maximum(tw, floor) if logx else tw
        ax_h.hist([clip_am[~ff], clip_am[ff]], bins=bins, stacked=True, color=["#9e9e9e", _C_BAD],
                  label=["|Δ_true| (kept correctness)", "|Δ_true| (flipped)"])
        ax_h.hist(clip_tw, bins=bins, histtype="step", color=_C_CERT, linewidth=1.4, label="2η_s")
        if logx:
            ax_h.set_xscale("log")
        ok = "yes" if v["n_flipped_outside"] == 0 else f"NO ({v['n_flipped_outside']} outside)"
        ax_h.set_title(f"{v['name']}: at risk {v['n_at_risk']}/{v['n']}, flips {v['n_flipped']}, "
                       f"flips ⊆ at-risk: {ok}", fontsize=9)
        ax_h.set_xlabel("value" + (" (log; zeros at the left edge)" if logx else ""), fontsize=8)
        ax_h.set_ylabel("samples", fontsize=8)
        ax_h.legend(fontsize=7)
        # scatter: above the diagonal = at risk
        fl = _log_floor(list(am) + list(tw)) or 1e-12
        xs, ys = np.maximum(am, fl), np.maximum(tw, fl)
        lo, hi = float(min(xs.min(), ys.min())), float(max(xs.max(), ys.max()))
        if hi <= lo:
            hi = lo * 10.0
        ax_s.set_xscale("log")
        ax_s.set_yscale("log")
        d = np.geomspace(lo / 1.5, hi * 1.5, 50)
        ax_s.fill_between(d, d, hi * 1.5, color="#fde0dd", alpha=0.6, label="at risk: |Δ_true| ≤ 2η_s")
        ax_s.plot(d, d, color="#555555", linewidth=0.8)
        ax_s.scatter(xs[~ff], ys[~ff], s=10, color="#636363", label="kept correctness")
        if ff.any():
            ax_s.scatter(xs[ff], ys[ff], s=18, color=_C_BAD, marker="D", label="flipped")
        ax_s.set_xlim(lo / 1.5, hi * 1.5)
        ax_s.set_ylim(lo / 1.5, hi * 1.5)
        _tidy_log_axis(ax_s.xaxis)
        _tidy_log_axis(ax_s.yaxis)
        ax_s.set_xlabel("|Δ_true(s)| (dense model; zeros at the floor)", fontsize=8)
        ax_s.set_ylabel("2η_s", fontsize=8)
        ax_s.legend(fontsize=7, loc="best")
    fig.suptitle(title + " (flips must lie in the at-risk set)", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# 4. sigma_plus vs budget scatter
# --------------------------------------------------------------------------------------------
def data_sigma_budget_scatter(report: Mapping) -> dict:
    """Per variant: σ₊(ℓ) of the dense layer vs B_T(R_ℓ) and vs the Trap-T12 proxy.

    Returns
    -------
    dict
        ``{"variants": [{"name", "points": [{"layer", "layer_type", "sigma_plus", "budget",
        "certified", "proxy"}], "r": float|None, "n_r": int, "r_proxy": float|None,
        "n_r_proxy": int}], "layer_types": [str]}``; ``r`` is the Pearson correlation of
        ``log σ₊`` and ``log B_T`` over the positive finite points.
    """
    info = {}
    for layer in report.get("layers") or []:
        mp = layer.get("mp") or {}
        sp = _num(mp.get("sigma_plus")) if mp.get("status") == "fitted" else None
        info[layer.get("name")] = (sp, str(layer.get("layer_type", "")))
    types: list[str] = []
    out = []
    for v in report.get("variants") or []:
        pts = []
        for layer in v.get("layers") or []:
            sp, lt = info.get(layer.get("name"), (None, ""))
            if lt not in types:
                types.append(lt)
            b = layer.get("budget") or {}
            pts.append({
                "layer": str(layer.get("name", "?")),
                "layer_type": lt,
                "sigma_plus": sp,
                "budget": _num(b.get("value")),
                "certified": bool(b.get("certified")),
                "proxy": _num((layer.get("proxy") or {}).get("op_norm_times_input_sup")),
            })
        r, n_r = pearson_log([p["sigma_plus"] for p in pts], [p["budget"] for p in pts])
        rp, n_rp = pearson_log([p["sigma_plus"] for p in pts], [p["proxy"] for p in pts])
        out.append({"name": str(v.get("name", "?")), "points": pts, "r": r, "n_r": n_r,
                    "r_proxy": rp, "n_r_proxy": n_rp})
    return {"variants": out, "layer_types": types}


def plot_sigma_budget_scatter(data: Mapping) -> Figure:
    """Log–log scatter σ₊(ℓ) vs B_T(R_ℓ), colour = layer type; hollow squares = T12 proxy."""
    title = "MP edge σ₊(ℓ) vs data-path budget"
    variants = data.get("variants") or []

    def usable(p: Mapping, key: str) -> bool:
        return _pos(p["sigma_plus"]) is not None and _pos(p[key]) is not None

    if not any(usable(p, "budget") or usable(p, "proxy") for v in variants for p in v["points"]):
        return _no_data_figure(title, "no data (needs fitted σ₊ and positive budgets)")
    types = list(data.get("layer_types") or [])
    cmap = {t: f"C{i % 10}" for i, t in enumerate(types)}
    shown = {p["layer_type"] for v in variants for p in v["points"]
             if usable(p, "budget") or usable(p, "proxy")}
    ncols = min(3, len(variants))
    nrows = math.ceil(len(variants) / ncols)
    fig = _figure(4.6 * ncols + 0.6, 3.9 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, v in zip(axes, variants, strict=False):
        pts_b = [p for p in v["points"] if usable(p, "budget")]
        pts_p = [p for p in v["points"] if usable(p, "proxy")]
        if not pts_b and not pts_p:
            _no_data(ax, f"{v['name']}: no data")
            continue
        for p in pts_b:
            ax.scatter(p["sigma_plus"], p["budget"], color=cmap.get(p["layer_type"], "C0"),
                       marker="o" if p["certified"] else "^", s=30, zorder=3)
        for p in pts_p:
            ax.scatter(p["sigma_plus"], p["proxy"], facecolors="none",
                       edgecolors=cmap.get(p["layer_type"], "C0"), marker="s", s=34, zorder=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        r = "n/a" if v["r"] is None else f"{v['r']:+.2f}"
        rp = "n/a" if v["r_proxy"] is None else f"{v['r_proxy']:+.2f}"
        ax.set_title(f"{v['name']}: r(log σ₊, log B_T) = {r} (n={v['n_r']})\n"
                     f"proxy: r = {rp} (n={v['n_r_proxy']})", fontsize=9)
        _tidy_log_axis(ax.xaxis)
        _tidy_log_axis(ax.yaxis)
        ax.set_xlabel("σ₊(ℓ) of the dense layer (estimated, log)", fontsize=8)
        ax.set_ylabel("B_T(R_ℓ) (log)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(variants):]:
        ax.set_visible(False)
    handles = [Line2D([], [], marker="o", linestyle="none", color=cmap[t], label=t or "(untyped)")
               for t in types if t in shown]
    handles += [
        Line2D([], [], marker="o", linestyle="none", color="#444444", label="B_T certified"),
        Line2D([], [], marker="^", linestyle="none", color="#444444", label="B_T estimated"),
        Line2D([], [], marker="s", linestyle="none", markerfacecolor="none", color="#444444",
               label=PROXY_LABEL),
    ]
    axes[0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(title + " (Pearson r of the logs over positive finite points)", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
#: slug -> (data function, plot function, caption), in report order.
FIGURES: dict[str, tuple[Callable[[Mapping], dict], Callable[[Mapping], Figure], str]] = {
    "budget_bars": (
        data_budget_bars, plot_budget_bars,
        "Per variant and layer: data-path budget B_T(R_ℓ) (hatched when it rests on an estimated "
        "L_s) next to the penalty λ2‖R‖²_F + λ1‖R‖₁; ✗ marks violated layers.",
    ),
    "mp_fits": (
        data_mp_fits, plot_mp_fits,
        "Eigenvalue histograms of WᵀW/rows (structural zeros dropped) with the fitted "
        "Marchenko–Pastur density and the fitted edge λ₊ — an estimate, not a certificate.",
    ),
    "margin_histogram": (
        data_margin_histogram, plot_margin_histogram,
        "True-label margins |Δ_true(s)| of the dense model against the per-sample threshold "
        "2η_s; samples with |Δ_true| ≤ 2η_s are at risk, and correctness flips (red) must lie "
        "among them.",
    ),
    "sigma_budget_scatter": (
        data_sigma_budget_scatter, plot_sigma_budget_scatter,
        "Fitted MP edge σ₊(ℓ) against B_T(R_ℓ), coloured by layer type; hollow squares are the "
        "Trap-T12 proxy ‖R‖_op·mean‖v‖_∞, which is not a bound.",
    ),
}
#: Figure slugs in report order.
FIGURE_SLUGS: tuple[str, ...] = tuple(FIGURES)


def render_figures(report: Mapping, *, slugs: Sequence[str] = FIGURE_SLUGS,
                   dpi: int = _DPI) -> dict[str, bytes]:
    """Render the audit figures to PNG bytes.

    Parameters
    ----------
    report : dict
        A valid audit report.
    slugs : sequence of str
        Which figures (default: all four, in report order).
    dpi : int

    Returns
    -------
    dict of str to bytes
        slug -> PNG bytes.
    """
    out = {}
    for slug in slugs:
        data_fn, plot_fn, _ = FIGURES[slug]
        fig = plot_fn(data_fn(report))
        out[slug] = figure_png(fig, dpi=dpi)
    return out
