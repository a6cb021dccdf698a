r"""Markdown rendering of an audit report, and the document model shared with the HTML renderer.

:func:`build_document` turns a report into a list of blocks (headings, paragraphs, lists,
tables, figure references) with a tiny inline markup; :func:`render_markdown` and
:func:`audits.report.html.render_html` print the *same* blocks, so both files carry the same
content. Every number is printed with its label (*certified* or *estimated*); the Trap-T12
op-norm proxy is always called "proxy — not a bound".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .figures import FIGURE_SLUGS, FIGURES

__all__ = [
    "Heading",
    "Para",
    "Bullets",
    "Table",
    "FigureRef",
    "build_document",
    "render_markdown",
    "fmt_num",
]

#: Inline piece: plain text, or (kind, text) with kind in {"code", "b", "em", "status"}.
Inline = str | tuple[str, str]
Text = str | list[Inline]

PROXY_NAME = "proxy — not a bound"


@dataclass(frozen=True)
class Heading:
    """Section heading (``level`` 1–4); ``anchor`` becomes the HTML id."""

    level: int
    text: Text
    anchor: str | None = None


@dataclass(frozen=True)
class Para:
    """Paragraph; ``style`` is "" (plain), "note" or "warn" (rendered as a quote / callout)."""

    text: Text
    style: str = ""


@dataclass(frozen=True)
class Bullets:
    """Bulleted list."""

    items: list[Text]


@dataclass(frozen=True)
class Table:
    """Table with a header row; ``numeric`` marks right-aligned columns."""

    headers: list[str]
    rows: list[list[Text]]
    numeric: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FigureRef:
    """A figure of :data:`audits.report.figures.FIGURES`, by slug."""

    slug: str
    caption: str


Block = Heading | Para | Bullets | Table | FigureRef


# --------------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------------
def fmt_num(x: Any, digits: int = 4) -> str:
    """Compact number: ``—`` for None/non-finite, integers as is, floats with ``digits`` significant."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if x == 0:
            return "0"
        if 1e-3 <= abs(x) < 1e5:
            return f"{x:.{digits}g}"
        return f"{x:.{max(1, digits - 1)}e}"
    return str(x)


def _pct(x: Any) -> str:
    return "—" if not isinstance(x, (int, float)) or isinstance(x, bool) else f"{100.0 * x:.1f} %"


def _value(x: Any) -> str:
    """Any JSON value as a short string (nested values as compact JSON)."""
    if isinstance(x, (dict, list)):
        return json.dumps(x, sort_keys=True, ensure_ascii=False)
    return fmt_num(x)


#: Longest provenance string shown inline (the full value is in report.json).
SOURCE_CHARS = 240


def _short(text: str) -> str:
    return text if len(text) <= SOURCE_CHARS else text[:SOURCE_CHARS] + " … (full in report.json)"


def _label(certified: Any) -> tuple[str, str]:
    return ("status", "certified" if certified else "estimated")


def _status(s: Any) -> tuple[str, str]:
    return ("status", str(s))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------------------------
# document
# --------------------------------------------------------------------------------------------
def _variant_sentence(v: Mapping) -> list[Inline]:
    s = v["summary"]
    return [("code", v["name"]),
            f" ({v['decomposition']}, sparsity {_pct(v['sparsity'])}): {s['n_layers']} layers: "
            f"{s['certified']} certified, {s['estimated']} estimated-only, {s['violated']} violated; "
            f"certified decrease in {s['decrease_certified']}."]


def _summary(report: Mapping) -> list[Block]:
    s = report["summary"]
    n_cert_viol = sum(1 for v in report["variants"] for x in v["violations"] if x["certified"])
    blocks: list[Block] = [
        Heading(2, "Summary", "summary"),
        Para(f"{_plural(s['n_layers'], 'audited layer')} × {_plural(s['n_variants'], 'variant')}: "
             f"{s['certified']} layer results certified, {s['estimated']} estimated-only, "
             f"{s['violated']} violated ({_plural(s['violations'], 'violated check')}). "
             f"Wall time {fmt_num(float(s['wall_time_s']), 3)} s."),
    ]
    if report["variants"]:
        blocks.append(Bullets([_variant_sentence(v) for v in report["variants"]]))
    if s["violations"]:
        msg = (f"{_plural(s['violations'], 'check')} failed, {n_cert_viol} of them certified. "
               if n_cert_viol else f"{_plural(s['violations'], 'check')} failed, all estimated. ")
        msg += ("A failed certified check means a bug or a violated hypothesis; a failed estimated "
                "check means the Lipschitz estimate was too small. See Violations.")
        blocks.append(Para(msg, "warn"))
    return blocks


def _kv_table(d: Mapping, keys: Sequence[str] | None = None) -> Table:
    keys = list(d) if keys is None else keys
    return Table(["key", "value"], [[[("code", k)], _value(d[k])] for k in keys if k in d])


def _environment(report: Mapping) -> list[Block]:
    env = report["environment"]
    model = report["model"]
    blocks: list[Block] = [Heading(2, "Environment", "environment"), _kv_table(env)]
    blocks += [Heading(2, "Model", "model"), _kv_table(model)]
    return blocks


def _calibration(report: Mapping) -> list[Block]:
    cal = report["calibration"]
    dense = report["dense"]
    blocks: list[Block] = [Heading(2, "Calibration set T", "calibration"), _kv_table(
        cal, [k for k in cal if k != "skipped"])]
    if cal["label_policy"] == "dense-prediction":
        blocks.append(Para("Labels are the dense model's predictions, so the dense accuracy on T is "
                           "100 % by construction and accuracy changes are agreement changes.", "note"))
    if cal["skipped"]:
        blocks.append(Para(f"Skipped {_plural(len(cal['skipped']), 'input')}:"))
        blocks.append(Bullets([[("code", x["path"]), f" — {x['reason']}"] for x in cal["skipped"]]))
    else:
        blocks.append(Para("No calibration input was skipped."))
    blocks.append(Para(
        f"Dense model on T: cross-entropy {fmt_num(dense['ce'])}, accuracy {_pct(dense['accuracy'])} "
        f"(n = {dense['n']}). All measured changes below are on this same T (Trap T20)."))
    return blocks


def _config(report: Mapping) -> list[Block]:
    cfg = report["config"]
    lip = cfg["lipschitz"]
    rows: list[list[Text]] = [
        ["λ1 (ℓ1 weight)", fmt_num(cfg["lam1"])],
        ["λ2 (Frobenius weight)", fmt_num(cfg["lam2"])],
        ["source of λ1, λ2", cfg["lambda_source"]],
        ["weight decay", fmt_num(cfg["weight_decay"])],
        ["L_s mode", [("code", lip)]],
        ["Lipschitz samples", fmt_num(cfg["lipschitz_samples"])],
        ["outcome samples", fmt_num(cfg["outcome_samples"])],
        ["batch size", fmt_num(cfg["batch_size"])],
        ["seed", fmt_num(cfg["seed"])],
        ["θ grid", ", ".join(fmt_num(t) for t in cfg["theta_grid"]) or "—"],
        ["safety factor", fmt_num(cfg["safety_factor"])],
        ["tolerance", f"atol {fmt_num(cfg['tolerance']['atol'])}, rtol {fmt_num(cfg['tolerance']['rtol'])}"],
    ]
    known = {"lam1", "lam2", "lambda_source", "weight_decay", "lipschitz", "lipschitz_samples",
             "outcome_samples", "batch_size", "seed", "theta_grid", "safety_factor", "tolerance"}
    rows += [[[("code", k)], _value(v)] for k, v in cfg.items() if k not in known]
    blocks: list[Block] = [Heading(2, "Configuration", "config"), Table(["setting", "value"], rows)]
    notes = ["The objective is J = L_CE + λ2‖A‖²_F + λ1‖A‖₁ per audited layer (λ2 without a ½; "
             "SGD weight decay wd corresponds to λ2 = wd/2, AdamW's decoupled decay to no penalty "
             "term; Trap T15)."]
    notes.append("Each layer records how its L_s was obtained (column L_s below): only the rigorous "
                 "bounds L0–L3 (THEORY §1.6) make a result certified; Jacobian/secant sampling and "
                 "user-supplied values are estimates, and a safety factor does not change that.")
    blocks.append(Bullets(notes))
    return blocks


def _mp_table(report: Mapping) -> list[Block]:
    rows = []
    for layer in report["layers"]:
        mp = layer["mp"]
        fitted = mp["status"] == "fitted"
        rows.append([
            [("code", layer["name"])], layer["module_type"], layer["layer_type"],
            "×".join(str(d) for d in layer["shape"]), str(layer["positions"]),
            fmt_num(layer["input_sup_mean"]),
            "fitted" if fitted else f"skipped: {mp['reason'] or '—'}",
            fmt_num(mp["sigma_plus"]), fmt_num(mp["lambda_plus"]), fmt_num(mp["c"]),
            _pct(mp["bulk_fraction"]) if mp["bulk_fraction"] is not None else "—",
            fmt_num(mp["fit_error"]), fmt_num(mp["n_spikes"]),
        ])
    return [
        Heading(2, "Audited layers and Marchenko–Pastur fits (estimated)", "layers"),
        Para("σ₊ = sqrt(rows·λ₊) is the fitted MP edge on the singular-value scale of the dense "
             "layer; λ₊ is on the eigenvalue scale of WᵀW/rows (c = cols/rows). The fit is an "
             "estimation procedure (c-aware BEMA, THEORY §3.6): it ranks layers and is never "
             "used in a certificate."),
        Table(["layer", "module", "type", "shape", "positions", "mean ‖v‖∞", "MP", "σ₊", "λ₊", "c",
               "bulk", "fit error", "spikes"], rows, frozenset({4, 5, 7, 8, 9, 10, 11, 12})),
    ]


def _ce_cell(layer: Mapping) -> str:
    o = layer["outcome"]
    if o is None:
        return "—"
    rel = "≤" if o["ce_within_budget"] else ">"
    mark = "✓" if o["ce_within_budget"] else "✗"
    return f"|{fmt_num(o['ce_change'])}| {rel} {fmt_num(o['budget'])} {mark} (n={o['n']})"


def _flip_cell(layer: Mapping) -> str:
    o = layer["outcome"]
    if o is None:
        return "—"
    ok = "yes" if o["flips_within_at_risk"] else "NO"
    return f"{ok} ({o['n_flips']} flips / {o['n_at_risk']} at risk)"


def _decrease(flag: bool | None, certified: bool) -> Text:
    if flag is None:
        return "—"
    if not flag:
        return "no"
    return "yes" if certified else ["yes (", ("status", "estimated"), ")"]


def _cert_rows(layer: str, certs: Sequence[Mapping]) -> list[list[Text]]:
    rows = []
    for c in certs:
        holds = c["holds"]
        rows.append([
            [("code", layer)], [("b", c["result"])], c["statement"], c["kind"], fmt_num(c["lhs"]),
            fmt_num(c["rhs"]),
            "—" if holds is None else ([("status", "violated")] if holds is False and c["kind"] == "check"
                                       else ("yes" if holds else "no")),
            [_label(c["certified"])], c["lipschitz_method"],
        ])
    return rows


_CERT_HEADERS = ["layer", "result", "statement", "kind", "lhs", "rhs", "holds", "label", "L_s method"]


def _variant(v: Mapping, index: int) -> list[Block]:
    anchor = f"variant-{index}"
    blocks: list[Block] = [Heading(2, [f"Variant {index + 1}: ", ("code", v["name"])], anchor)]
    blocks.append(Para(v["description"] or "(no description)"))
    blocks.append(Bullets([
        f"decomposition: {v['decomposition']}; overall sparsity of the audited layers: {_pct(v['sparsity'])}",
        ["source: ", ("code", _short(_value(v["source"])))],
        _variant_sentence(v),
    ]))
    if v["other_changes"]:
        blocks.append(Para("Parameters outside the audited matrices also differ: "
                           + "; ".join(v["other_changes"]) + ". A comparison of whole networks is then "
                           "not an instance of the theorems; every result below changes only the "
                           "audited matrix.", "warn"))
    rows = []
    for layer in v["layers"]:
        lip, b = layer["lipschitz"], layer["budget"]
        proxy = layer["proxy"]["op_norm_times_input_sup"]
        rows.append([
            [("code", layer["name"])], layer["decomposition"], _pct(layer["sparsity"]),
            [fmt_num(b["value"]) + " ", _label(b["certified"])],
            fmt_num(layer["penalty"]),
            f"{fmt_num(lip['value'])} ({lip['method']}, {'certified' if lip['certified'] else 'estimated'})",
            [_status(layer["status"])],
            _decrease(layer["decrease_certified"], b["certified"]),
            _ce_cell(layer), _flip_cell(layer),
            fmt_num(proxy),
        ])
    blocks.append(Heading(3, "Per-layer results", f"{anchor}-layers"))
    blocks.append(Table(
        ["layer", "decomp.", "sparsity", "B_T(R) (label)", "penalty λ2‖R‖²+λ1‖R‖₁", "L_s (method)",
         "status", "decrease certified", "ΔCE measured vs B_T", "flips ⊆ at-risk",
         f"‖R‖_op·mean‖v‖∞ ({PROXY_NAME})"],
        rows, frozenset({2, 3, 4, 10})))
    blocks.append(Para("Single-layer results: only this layer's matrix is replaced by S (all other "
                       "layers dense). 'Decrease certified' means the sufficient condition "
                       "B_T(R) < λ2‖R‖²_F + λ1‖R‖₁ (mask, M-Thm 5.4) or "
                       "B_T(R) < λ2‖R‖²_F + 2λ2⟨S,R⟩_F (additive, M-Thm 5.3) holds with a certified B_T; the "
                       "condition is not necessary for a decrease. "
                       f"The last column is the op-norm {PROXY_NAME} (Trap T12), shown only for "
                       "comparison with the paper's audit figures.", "note"))
    details: dict[str, list[str]] = {}
    for layer in v["layers"]:
        details.setdefault(layer["lipschitz"]["detail"] or "(no detail)", []).append(layer["name"])
    blocks.append(Para("How L_s was obtained:"))
    blocks.append(Bullets([[*_join_code(names, ", "), f": {d}"] for d, names in details.items()]))
    blocks.append(Table(
        ["layer", "‖R‖²_F", "‖R‖₁", "⟨S,R⟩_F", "η_max", "η_mean", "Δaccuracy", "prediction flips",
         "predictions at risk"],
        [[[("code", la["name"])], fmt_num(la["removed_fro2"]), fmt_num(la["removed_l1"]),
          fmt_num(la["cross_term"]), fmt_num(la["eta_max"]), fmt_num(la["eta_mean"]),
          *(("—", "—", "—") if la["outcome"] is None else
            (fmt_num(la["outcome"]["acc_change"]), fmt_num(la["outcome"]["n_pred_flips"]),
             fmt_num(la["outcome"]["n_pred_at_risk"])))]
         for la in v["layers"]],
        frozenset(range(1, 9))))
    cert_rows = [r for layer in v["layers"] for r in _cert_rows(layer["name"], layer["certificates"])]
    if cert_rows:
        blocks.append(Heading(3, "Certificates", f"{anchor}-certificates"))
        blocks.append(Table(_CERT_HEADERS, cert_rows, frozenset({4, 5})))
    na = [[("code", layer["name"]), ": ", ("b", x["result"]), f" — {x['reason']}"]
          for layer in v["layers"] for x in layer["not_applicable"]]
    if na:
        blocks.append(Heading(3, "Not applicable", f"{anchor}-na"))
        blocks.append(Para("Results whose hypotheses this variant does not meet (for an additive "
                           "decomposition only M-Lemma 5.1, M-Cor 5.2 and M-Thm 5.3 apply; Trap T8):"))
        blocks.append(Bullets(na))
    pr = [layer for layer in v["layers"] if layer["prune_restore"] is not None]
    if pr:
        blocks.append(Heading(3, "Prune–restore (M-Thm 5.5, M-Cor 5.6)", f"{anchor}-pr"))
        blocks.append(Para("A = S + Q + P with disjoint supports; P is finally removed, Q restored with "
                           "the original entries (Trap T14). B_T(P) and B_T(Q+P) use L_s on their own "
                           "paths; M-Cor 5.6 compares upper bounds, not objective values."))
        blocks.append(Table(["layer", "B_T(P)", "B_T(Q+P)"],
                            [[[("code", x["name"])], fmt_num(x["prune_restore"]["budget_P"]),
                              fmt_num(x["prune_restore"]["budget_R"])] for x in pr], frozenset({1, 2})))
        rows_pr = [r for x in pr for r in _cert_rows(x["name"], x["prune_restore"]["certificates"])]
        if rows_pr:
            blocks.append(Table(_CERT_HEADERS, rows_pr, frozenset({4, 5})))
    blocks += _multilayer(v, anchor)
    blocks += _margins(v)
    return blocks


def _multilayer(v: Mapping, anchor: str) -> list[Block]:
    ml = v["multilayer"]
    blocks: list[Block] = [Heading(3, "Multi-layer (sequential) certificate", f"{anchor}-multilayer")]
    if ml is None:
        blocks.append(Para("Not evaluated for this variant (M-Thm 5.8 needs mask steps whose budgets "
                           "are computed in the intermediate networks)."))
        return blocks
    blocks.append(Bullets([
        ["order: ", *_join_code(ml["order"], " → ")],
        f"order rule: {ml['order_rule']}",
        ["status: ", _status(ml["status"])],
        f"Σ_j B_j = {fmt_num(ml['sum_budgets'])}",
    ]))
    blocks.append(Para("M-Thm 5.8 / E-Cor 1.3 need every B_j computed in the intermediate network "
                       "α^(j−1), where steps 1..j−1 are already applied (inputs change when an upstream "
                       "layer was pruned, L_s when a downstream one was); budgets of the original or of "
                       "the final network are not covered (Trap T7).", "note"))
    blocks.append(Table(
        ["step", "layer", "B_j", "L_s", "method", "label"],
        [[str(j + 1), [("code", st["layer"])], fmt_num(st["budget"]), fmt_num(st["lipschitz"]),
          st["method"], [_label(st["certified"])]] for j, st in enumerate(ml["steps"])],
        frozenset({0, 2, 3})))
    if ml["certificates"]:
        blocks.append(Table(_CERT_HEADERS, _cert_rows("all", ml["certificates"]), frozenset({4, 5})))
    o = ml["outcome"]
    blocks.append(Para(f"Measured with all steps applied (n = {o['n']}): ΔCE = {fmt_num(o['ce_change'])}, "
                       f"Δaccuracy = {fmt_num(o['acc_change'])}, {o['n_flips']} correctness flips, "
                       f"{o['n_pred_flips']} prediction flips, {o['n_at_risk']} samples at risk."))
    return blocks


def _join_code(names: Sequence[str], sep: str) -> list[Inline]:
    out: list[Inline] = []
    for i, n in enumerate(names):
        if i:
            out.append(sep)
        out.append(("code", n))
    return out or ["—"]


def _margins(v: Mapping) -> list[Block]:
    m = v["margins"]
    n = len(m["true_margin"])
    if n == 0:
        return [Para("No per-sample margins were recorded for this variant.")]
    risk = [abs(a) <= b for a, b in zip(m["true_margin"], m["two_eta"], strict=True)]
    flips = sum(bool(f) for f in m["flipped"])
    outside = sum(bool(f) and not r for f, r in zip(m["flipped"], risk, strict=True))
    ok = "yes" if outside == 0 else f"NO — {outside} flip(s) outside the at-risk set"
    return [Para(f"Margins: {sum(risk)} of {n} samples at risk (|Δ_true(s)| ≤ 2η_s), {flips} correctness "
                 f"flips; flips ⊆ at-risk: {ok}.")]


def _violations(report: Mapping) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Violations", "violations")]
    items: list[Text] = []
    for v in report["variants"]:
        for x in v["violations"]:
            kind = "certified" if x["certified"] else "estimated"
            items.append([("code", v["name"]), " / ", ("code", x["layer"]), " — ", ("b", x["result"]),
                          f": lhs = {fmt_num(x['lhs'])}, rhs = {fmt_num(x['rhs'])} [", ("status", kind),
                          f"]. {x['message']}"])
    if not items:
        blocks.append(Para("No check was violated."))
        return blocks
    blocks.append(Bullets(items))
    blocks.append(Para(["A violated ", ("em", "certified"), " check contradicts a proven inequality: it "
                        "signals a bug or an unmet hypothesis and must be investigated. A violated ",
                        ("em", "estimated"), " check only shows that the estimated L_s was below the "
                        "true local Lipschitz constant."], "note"))
    return blocks


def _how_to_read() -> list[Block]:
    return [
        Heading(2, "How to read this report", "how-to-read"),
        Bullets([
            [("b", "certified"), ": a proven inequality of the paper evaluated with a rigorous upper "
             "bound on the local Lipschitz constant L_s (L0–L3, THEORY §1.6) and verified "
             "preconditions. It holds unconditionally on the calibration set T."],
            [("b", "estimated"), ": at least one ingredient is an estimate (Jacobian or secant sampling "
             "of L_s, a user-supplied L_s, an MP fit). The statement is then conditional on L_s ≥ L_s* "
             "and can fail; a safety factor does not make it certified (THEORY §1.7, Trap T25)."],
            "B_T(R) = (2/|T|)·Σ_s L_s‖R v_s‖_∞ is the data-path budget of M-Lemma 5.1: |ΔL_CE| ≤ B_T(R) "
            "when the layer's removed part R is dropped. Its factor 2 comes from cross-entropy being "
            "2-Lipschitz in ℓ∞; the margin threshold 2η_s (η_s = L_s‖R v_s‖_∞) has a different factor 2 "
            "(two logits each move by at most η_s). Compare per-sample margins with 2η_s, never with "
            "B_T (Trap T4).",
            "Correctness can flip only for samples at risk, |Δ_true(s)| ≤ 2η_s (M-Cor 5.2); the "
            "accuracy change is at most #at-risk/|T|.",
            "Mask decompositions (S ⊙ R = 0) admit the elastic-net, prune–restore, stationarity and "
            "multi-layer theorems; after fine-tuning the kept weights move, R = W_dense − W_sparse is "
            "additive and only M-Lemma 5.1, M-Cor 5.2 and M-Thm 5.3 apply (Trap T8).",
            "Multi-layer certificates need each step's budget computed in the intermediate network "
            "(Trap T7); a sum of single-layer budgets of one network is not covered.",
            [f"The op-norm {PROXY_NAME}", ": ‖R‖_op·mean_s‖v_s‖_∞ is reported only for comparison with "
             "the paper's audit figures. Since ‖Rv‖_∞ ≤ ‖R‖_op‖v‖_∞ is false in general, it is neither "
             "B_T nor an upper bound on it (Trap T12) and it is never used in a certificate."],
            "MP fits (σ₊, λ₊, bulk fraction, fit error, spikes) are estimates; σ₊ is a ranking signal for "
            "which layers carry a large budget, not a guarantee (Traps T9, T10).",
            "All measured changes (ΔCE, flips) are on the same set T over which B_T is averaged "
            "(Trap T20); nothing is claimed for inputs outside T.",
        ]),
    ]


def _figures(figure_slugs: Sequence[str]) -> list[Block]:
    if not figure_slugs:
        return []
    blocks: list[Block] = [Heading(2, "Figures", "figures")]
    blocks += [FigureRef(slug, FIGURES[slug][2]) for slug in figure_slugs if slug in FIGURES]
    return blocks


def build_document(report: Mapping, *, figure_slugs: Sequence[str] = FIGURE_SLUGS) -> list[Block]:
    """The report as a list of blocks (shared by the Markdown and HTML renderers).

    Parameters
    ----------
    report : dict
        A valid audit report (see :func:`audits.report.schema.validate_report`).
    figure_slugs : sequence of str
        Figures to reference, in order (empty: no figure section).

    Returns
    -------
    list of Heading, Para, Bullets, Table or FigureRef
    """
    model = report["model"]
    blocks: list[Block] = [
        Heading(1, ["certkit audit — ", ("code", model["name"])], "top"),
        Para(f"Created {report['created']} · schema {report['schema']} {report['schema_version']} · "
             f"status {report['status']}."),
    ]
    blocks += _summary(report)
    blocks += _environment(report)
    blocks += _calibration(report)
    blocks += _config(report)
    blocks += _mp_table(report)
    for i, v in enumerate(report["variants"]):
        blocks += _variant(v, i)
    blocks += _violations(report)
    if report["notes"]:
        blocks += [Heading(2, "Notes", "notes"), Bullets(list(report["notes"]))]
    blocks += _how_to_read()
    blocks += _figures(figure_slugs)
    return blocks


# --------------------------------------------------------------------------------------------
# markdown printer
# --------------------------------------------------------------------------------------------
def _md_code(s: str) -> str:
    ticks = "``" if "`" in s else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def _md_inline(text: Text, *, table: bool = False) -> str:
    parts = [text] if isinstance(text, str) else text
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            kind, s = p
            if kind == "code":
                out.append(_md_code(s))
            elif kind == "b":
                out.append(f"**{s}**")
            elif kind == "em":
                out.append(f"*{s}*")
            elif kind == "status":
                out.append(f"**{s.upper()}**" if s == "violated" else s)
            else:
                out.append(s)
    s = "".join(out)
    if table:
        s = s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return s


def _md_block(b: Block, figures_dir: str) -> str:
    if isinstance(b, Heading):
        return "#" * b.level + " " + _md_inline(b.text)
    if isinstance(b, Para):
        text = _md_inline(b.text)
        if b.style == "warn":
            return "> **Warning.** " + text
        if b.style == "note":
            return "> " + text
        return text
    if isinstance(b, Bullets):
        return "\n".join("- " + _md_inline(i) for i in b.items)
    if isinstance(b, Table):
        head = "| " + " | ".join(_md_inline(h, table=True) for h in b.headers) + " |"
        sep = "|" + "|".join("---:" if i in b.numeric else "---" for i in range(len(b.headers))) + "|"
        body = ["| " + " | ".join(_md_inline(c, table=True) for c in row) + " |" for row in b.rows]
        return "\n".join([head, sep, *body])
    if isinstance(b, FigureRef):
        path = f"{figures_dir.rstrip('/')}/{b.slug}.png"
        return f"![{b.slug}]({path})\n\n*{b.caption}*"
    raise TypeError(f"unknown block {type(b).__name__}")


def render_markdown(report: Mapping, *, figure_slugs: Sequence[str] = FIGURE_SLUGS,
                    figures_dir: str = "figures") -> str:
    """Render the report as GitHub-flavoured Markdown.

    Parameters
    ----------
    report : dict
        A valid audit report.
    figure_slugs : sequence of str
        Figures to link (``figures_dir/<slug>.png``); empty for none.
    figures_dir : str
        Relative directory of the PNG files.

    Returns
    -------
    str
    """
    blocks = build_document(report, figure_slugs=figure_slugs)
    return "\n\n".join(_md_block(b, figures_dir) for b in blocks) + "\n"
