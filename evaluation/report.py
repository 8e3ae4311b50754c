"""The evaluation report: report.json, the summary and noise-sweep tables, and one self-contained HTML page.

`write_report(report, out)` writes OUT/report.json and OUT/report.html for the dict `evaluation.runner.run_eval`
returns. The tables (`summary_table`, `noise_table`, and `table` for any summaries and columns, as
benchmarks/generator_eval.py and answer_eval.py print them) are rows of strings; the CLI, the app, the HTML page
and the benchmarks all format numbers with `fmt`.

The page (`render`) loads nothing (no script, no external CSS, fonts or images; the plot is inline SVG) and every
piece of text that comes from a document, a question or an answer goes through `html.escape`, so a passage
holding markup shows as text.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence, Union

# a column: (summary key, header, kind); kind: "int", "pct", "sec", "num" (3 decimals), a format spec such as
# ".1f", or a function of the whole summary giving the cell
Kind = Union[str, Callable[[dict], str]]
Column = tuple[str, str, Kind]

# the summary columns of `sculptrag eval`, shared by the CLI table, the app and the HTML page
COLUMNS: list[Column] = [
    ("n", "n", "int"), ("token_f1", "F1", "num"), ("exact_match", "EM", "num"),
    ("contains_gold", "contains", "num"), ("pass", "pass", "pct"), ("warn", "warn", "pct"),
    ("fail", "fail", "pct"), ("repaired", "repaired", "pct"), ("refusal_answerable_gold", "refused w/ gold", "pct"),
    ("evidence_recall", "evid. recall", "num"),
    ("citation_precision", "cit. prec.", "num"), ("recall_at_k", "recall@k", "num"), ("mrr", "MRR", "num"),
    ("latency_median_s", "median s", "sec"), ("latency_p95_s", "p95 s", "sec"),
    ("generate_median_s", "gen. median s", "sec"), ("tokens_per_s", "tok/s", "int"),
]
NOISE_COLUMNS: list[Column] = [
    ("refusal_answerable", "refuses answerable", "pct"), ("refusal_unanswerable", "refuses unanswerable", "pct"),
    ("token_f1", "F1", "num"), ("contains_gold", "contains", "num"),
]


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "sec":
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    if kind.startswith("."):
        return f"{value:{kind}}"
    return f"{value:.3f}"


def cell(summary: dict, key: str, kind: Kind) -> str:
    return kind(summary) if callable(kind) else fmt(summary.get(key), kind)


def table(summaries: dict[str, dict], columns: Sequence[Column], first: str = "generator", *,
          drop_empty: bool = False) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings): one row per summary (by name), one column per `columns` entry; with
    `drop_empty`, columns with no value in any summary are left out."""
    if drop_empty:
        columns = [c for c in columns if callable(c[2]) or any(s.get(c[0]) is not None for s in summaries.values())]
    headers = [first] + [h for _, h, _ in columns]
    rows = [[name] + [cell(s, key, kind) for key, _, kind in columns] for name, s in summaries.items()]
    return headers, rows


def summary_table(report: dict, summary: dict | None = None) -> tuple[list[str], list[list[str]]]:
    """The eval summary: one row per generator that ran, columns with no value anywhere dropped.
    `summary`: another summary of the report than report["summary"] (a noise slice's)."""
    summary = report["summary"] if summary is None else summary
    k = report["config"]["k"]
    headers, rows = table(summary, COLUMNS, drop_empty=True)
    return [h.replace("@k", f"@{k}") for h in headers], rows


def noise_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """A noise sweep at a glance: one row per level; per generator, the refusal rates on answerable and on
    unanswerable rows, mean F1 and "contains"."""
    names = list(report["summary"])
    headers = ["noise", "asked", "skipped"] + [f"{g} {h}" for g in names for _, h, _ in NOISE_COLUMNS]
    rows = []
    for name, s in report.get("slices", {}).items():
        asked = sum(r.get("slice") == name for r in report["items"])
        rows.append([name.removeprefix("noise="), str(asked), str(s["skipped"])]
                    + [cell(s["summary"].get(g, {}), key, kind) for g in names for key, _, kind in NOISE_COLUMNS])
    return headers, rows


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table as GitHub markdown (the benchmarks print these into docs/benchmarks.md)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_report(report: dict, out: str | Path) -> tuple[Path, Path]:
    """Write OUT/report.json and OUT/report.html; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(render(report), encoding="utf-8")
    return json_path, html_path


# -- the HTML page ---------------------------------------------------------------------------------------
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
PASSAGE_CHARS = 2000  # longer passages are cut in the drill-down (report.json keeps them whole)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
  color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}h4{margin:.8rem 0 .3rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.meta{color:#555}.err{color:#b00020}
details.item{border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}
details.item>summary{cursor:pointer}
.badge{display:inline-block;border-radius:3px;padding:0 .35rem;margin-right:.25rem;font-size:12px;color:#fff}
.pass{background:#2e7d32}.warn{background:#ed8c00}.fail{background:#c62828}.error{background:#555}
.answer{border-left:4px solid #ccc;margin:.6rem 0;padding:.2rem .8rem}
.text{white-space:pre-wrap;background:#fafafa;padding:.4rem;border-radius:3px}
.gold{font-weight:600;color:#2e7d32}
table.sent td{text-align:left;vertical-align:top}
ol.passages li{margin:.3rem 0}
"""


def render(report: dict) -> str:
    """The whole page as a string."""
    cfg = report["config"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sculptrag eval: {e(report['dataset'])}</title><style>{CSS}</style></head><body>",
        f"<h1>Evaluation: {e(report['dataset'])}</h1>",
        f"<p class=meta>{e(report.get('created', ''))} &middot; {cfg['items']} questions &middot; k = {cfg['k']}"
        f" &middot; checker {e(cfg.get('checker', ''))} &middot; {_store_line(report.get('store') or {})}</p>",
        _load_errors(report), "<h2>Summary</h2>", _summary(report),
        "<h2>Quality vs latency</h2>", _plot(report),
        "<h2>Questions</h2>", *(_item(it, list(report["summary"])) for it in report["items"]),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# -- sections --------------------------------------------------------------------------------------------
def _store_line(store: dict) -> str:
    if not store:
        return ""
    rejected = len(store.get("rejected", []))
    return (f"store {e(store.get('dir'))}: {store.get('documents', 0)} documents, {store.get('chunks', 0)} chunks"
            + (f", {rejected} rejected" if rejected else ""))


def _load_errors(report: dict) -> str:
    bad = {g: s for g, s in report["generators"].items() if s.get("status") != "ok"}
    return "".join(f"<p class=err>generator {e(g)} was not run: {e(s.get('error'))}</p>" for g, s in bad.items())


def _summary(report: dict) -> str:
    headers, rows = summary_table(report)
    if not rows:
        return "<p>No generator ran.</p>"
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            "<p class=meta>F1 / EM: against the gold answer; contains: an accepted short answer occurs in the "
            "answer; pass / warn / fail: the validator's verdict; evid. recall: share of the retrieved gold "
            "passages the answer cites; cit. prec.: share of citations relevant to their sentence; recall@k, "
            "MRR: gold sources among the retrieved documents; median / p95 s: the whole ask (retrieval + "
            "generation); gen. median s: generation alone; tok/s: as the generator's trace reports it.</p>")


PLOT_CAPTION = "Dots: one question each; diamonds: each generator's median latency and mean F1."
NO_PLOT = "No answer has a gold answer to score, so there is nothing to plot."


def _plot(report: dict) -> str:
    svg = quality_latency_svg(report)
    return f"{svg}<p class=meta>{PLOT_CAPTION}</p>" if svg else f"<p class=meta>{NO_PLOT}</p>"


def quality_latency_svg(report: dict, width: int = 640, height: int = 360) -> str | None:
    """Token F1 against latency, as an SVG: a dot per question and a large marker (median latency, mean F1) per
    generator. None when no answer has a gold answer to score."""
    names = list(report["summary"])
    dots = {g: [(r["seconds"], r["token_f1"]) for it in report["items"] for gg, r in it["answers"].items()
                if gg == g and "error" not in r and r.get("token_f1") is not None] for g in names}
    means = {g: (s["latency_median_s"], s["token_f1"]) for g, s in report["summary"].items()
             if s.get("latency_median_s") is not None and s.get("token_f1") is not None}
    xs = [x for pts in dots.values() for x, _ in pts] + [x for x, _ in means.values()]
    if not xs:
        return None
    left, right, top, bottom = 56, 150, 14, 42
    pw, ph = width - left - right, height - top - bottom
    lo, hi = max(min(xs), 1e-4), max(max(xs), 1e-4)
    log = hi / lo > 20
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
    else:
        lo, hi = 0.0, _nice_ceiling(hi)

    def sx(x: float) -> float:
        if log:
            t = (math.log10(max(x, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            t = (x - lo) / (hi - lo)
        return left + t * pw

    def sy(y: float) -> float:
        return top + (1 - y) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="token F1 against latency per generator" font-size="11" font-family="sans-serif">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for y in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x in _ticks(lo, hi, log):
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
                   f'<text x="{sx(x):.1f}" y="{top + ph + 15}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">latency per question, s'
               f'{" (log scale)" if log else ""}</text>'
               f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">token F1</text>')
    for i, g in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}" fill-opacity="0.35"/>'
                   for x, y in dots[g])
        if g in means:
            x, y = means[g]
            out.append(f'<path d="M{sx(x):.1f} {sy(y) - 7:.1f} l7 7 l-7 7 l-7 -7 z" fill="{color}" stroke="#000">'
                       f'<title>{e(g)}: median {x:.3f} s, mean F1 {y:.3f}</title></path>')
        ly = top + 14 + 18 * i
        out.append(f'<circle cx="{left + pw + 16}" cy="{ly - 4}" r="5" fill="{color}"/>'
                   f'<text x="{left + pw + 26}" y="{ly}">{e(g)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _item(item: dict, generators: Sequence[str]) -> str:
    answers = item["answers"]
    badges = "".join(_badge(g, answers.get(g, {"error": "not run"})) for g in generators)
    gold_sources = ", ".join(item["gold_sources"]) or "-"
    parts = [
        f"<details class=item><summary>{badges} <b>{e(item['id'])}</b> {e(item['question'])}</summary>",
        f"<p><b>Question:</b> {e(item['question'])}</p>",
        f"<p><b>Gold answer:</b> {e(item['gold_answer']) if item['gold_answer'] is not None else '-'}</p>",
        f"<p><b>Gold sources:</b> {e(gold_sources)}" + ("" if item["answerable"] else " (unanswerable)") + "</p>",
    ]
    if item.get("aliases"):
        parts.append(f"<p><b>Accepted answers:</b> {e(' | '.join(item['aliases']))}</p>")
    parts.extend(_answer(g, answers[g]) for g in generators if g in answers)
    parts.append(_passages(item.get("passages", [])))
    parts.append("</details>")
    return "\n".join(parts)


def _badge(generator: str, row: dict) -> str:
    status = "error" if "error" in row else row["status"]
    return f'<span class="badge {status}">{e(generator)}: {status}</span>'


def _answer(generator: str, row: dict) -> str:
    if "error" in row:
        return f"<div class=answer><h4>{e(generator)}</h4><p class=err>{e(row['error'])}</p></div>"
    metrics = [("F1", row.get("token_f1"), "num"), ("EM", row.get("exact_match"), "num"),
               ("contains", row.get("contains_gold"), "num"), ("evidence recall", row.get("evidence_recall"), "num"),
               ("seconds", row.get("seconds"), "sec"), ("tokens/s", row.get("tokens_per_s"), "int")]
    line = " &middot; ".join(f"{name} {e(fmt(v, kind))}" for name, v, kind in metrics if v is not None)
    sentences = "".join(
        f'<tr><td><span class="badge {s["status"]}">{s["status"]}</span></td><td>{e(s["text"])}</td>'
        f'<td>{e("; ".join(s["reasons"]))}</td></tr>' for s in row["sentences"])
    citations = "".join(
        f'<li{" class=gold" if c["gold"] else ""}>[{c["marker"]}] passage {c["passage"]}: {e(c["source"])}'
        f'{" (gold)" if c["gold"] else ""}</li>' for c in row["citations"])
    reasons = "".join(f"<li>{e(r)}</li>" for r in row["reasons"])
    return (f"<div class=answer><h4>{_badge(generator, row)}</h4><p class=meta>{line}</p>"
            f"<div class=text>{e(row['text']) or '<i>(empty answer)</i>'}</div>"
            + (f"<p><b>Verdict reasons</b></p><ul>{reasons}</ul>" if reasons else "")
            + (f"<table class=sent><tr><th>verdict</th><th>sentence</th><th>reasons</th></tr>{sentences}</table>"
               if sentences else "")
            + (f"<p><b>Citations</b></p><ul>{citations}</ul>" if citations else "<p>No citations.</p>")
            + "</div>")


def _passages(passages: Sequence[dict]) -> str:
    if not passages:
        return ""
    rows = []
    for p in passages:
        text = p["text"] if len(p["text"]) <= PASSAGE_CHARS else p["text"][:PASSAGE_CHARS] + "\u2026"
        mark = " <span class=gold>(gold source)</span>" if p["gold"] else ""
        rows.append(f"<li value={int(p['number'])}><b>{e(p['source'])}</b>{mark}"
                    f"<div class=text>{e(text)}</div></li>")
    return (f"<details><summary>Passages given ({len(passages)})</summary>"
            f"<ol class=passages>{''.join(rows)}</ol></details>")


# -- axes ------------------------------------------------------------------------------------------------
def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** p for p in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]
    step = hi / 4
    return [step * i for i in range(5)]


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above x (x > 0)."""
    p = 10 ** math.floor(math.log10(x))
    return next(m * p for m in (1, 2, 2.5, 5, 10) if m * p >= x)
