"""Trajectory viewer: one self-contained HTML file for an evaluation's results JSONL.

Images are inlined as base64 PNG data URIs; there is no JavaScript, external CSS, font or CDN. Per sample: the
question, every step (the user's image and text, the assistant's text and calls with their arguments, each tool's
output image and text), and the final answer beside the gold answer, marked right or wrong. A summary table
(accuracy, per question type, format and tool statistics) comes first. All text is escaped with ``html.escape``.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from thinkimg.eval.metrics import aggregate

__all__ = ["write_viewer", "render_viewer"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em} table.summary{border-collapse:collapse;margin-bottom:1.5em}
table.summary td,table.summary th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
section.sample{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:1em 0;padding:.6em 1em}
section.sample.right{border-left-color:#2a9d3a} section.sample.wrong{border-left-color:#d33}
.verdict{font-weight:bold} .right .verdict{color:#2a9d3a} .wrong .verdict{color:#d33}
.step{border-top:1px dashed #ddd;padding:.4em 0;display:flex;gap:1em;align-items:flex-start}
.role{min-width:6.5em;font-weight:bold;color:#555} .body{flex:1;min-width:0}
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:.4em;margin:.2em 0;
    max-height:18em;overflow:auto}
img.chart{max-width:560px;max-height:420px;border:1px solid #ccc;display:block;margin:.2em 0}
.call{font-family:monospace;background:#eef4ff;padding:.2em .4em;margin:.2em 0}
.ref{color:#777;font-size:.85em} .answers td{padding:.1em .8em .1em 0}
nav a{margin-right:.4em}
"""


def _image_tag(images_dir: Path, name: str | None, ref: str, cache: dict[Path, str]) -> str:
    if not name:
        return f'<div class="missing">[image {escape(ref)}: not recorded]</div>'
    path = images_dir / name
    if path not in cache:
        try:
            cache[path] = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError:
            cache[path] = ""
    if not cache[path]:
        return f'<div class="missing">[image {escape(ref)}: file {escape(str(path))} missing]</div>'
    return (f'<div class="ref">{escape(ref)}</div><img class="chart" alt="{escape(ref)}" '
            f'src="data:image/png;base64,{cache[path]}">')


def _content(parts: Any, images: dict[str, str], images_dir: Path, cache: dict[Path, str]) -> str:
    if isinstance(parts, str):
        return f"<pre>{escape(parts)}</pre>" if parts else ""
    out = []
    for part in parts or []:
        if part.get("type") == "image":
            ref = str(part.get("ref", ""))
            out.append(_image_tag(images_dir, images.get(ref), ref, cache))
        elif part.get("type") == "text":
            text = str(part.get("text", ""))
            if text:
                out.append(f"<pre>{escape(text)}</pre>")
    return "".join(out)


def _steps(conversation: dict[str, Any], images_dir: Path, cache: dict[Path, str]) -> str:
    images = conversation.get("images", {}) or {}
    out = []
    step = 0
    for message in conversation.get("messages", []):
        role = str(message.get("role", "?"))
        body = _content(message.get("content"), images, images_dir, cache)
        label = role
        if role == "assistant":
            step += 1
            label = f"assistant #{step}"
            for call in message.get("tool_calls") or []:
                fn = call.get("function", call)
                args = fn.get("arguments", {})
                args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
                body += (f'<div class="call">call <b>{escape(str(fn.get("name", "?")))}</b>'
                         f"({escape(args_text)})</div>")
            if not body:
                body = '<span class="ref">(no text)</span>'
        elif role == "tool":
            label = f"tool {message.get('name', '')}".strip()
        out.append(f'<div class="step {escape(role)}"><div class="role">{escape(label)}</div>'
                   f'<div class="body">{body}</div></div>')
    return "".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _summary_table(records: list[dict[str, Any]], summary: dict[str, Any] | None) -> str:
    stats = aggregate(records)
    rows = [("samples", stats["n"]), ("accuracy", stats["accuracy"])]
    if summary and "accuracy_without_tools" in summary:
        rows.append(("accuracy without tools", summary.get("accuracy_without_tools")))
    rows += [("valid format rate", stats["valid_format_rate"]), ("answer rate", stats["answer_rate"]),
             ("tool calls / episode", stats["calls_per_episode"]), ("tool failure rate", stats["tool_failure_rate"])]
    for kind, by in stats["by_type"].items():
        rows.append((f"accuracy [{kind}] (n={by['n']})", by["accuracy"]))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="summary" id="summary">{body}</table>'


def render_viewer(records: list[dict[str, Any]], base_dir: Path, *, title: str = "ThinkIMG evaluation",
                  summary: dict[str, Any] | None = None) -> str:
    """The HTML page for ``records`` (image folders resolved against ``base_dir``)."""
    cache: dict[Path, str] = {}
    sections = []
    nav = []
    for i, record in enumerate(records):
        correct = bool(record.get("correct"))
        verdict = "right" if correct else "wrong"
        anchor = f"s{i}"
        nav.append(f'<a href="#{anchor}" class="{verdict}">{"✓" if correct else "✗"}</a>')
        images_dir = base_dir / str(record.get("images_dir", "images"))
        conversation = record.get("conversation") or {}
        prediction = record.get("prediction")
        sections.append(
            f'<section class="sample {verdict}" id="{anchor}">'
            f'<h2>#{i + 1} <code>{escape(str(record.get("id")))}</code> '
            f'<span class="verdict">{"✓ right" if correct else "✗ wrong"}</span></h2>'
            f'<p class="question"><b>Question:</b> {escape(str(record.get("question", "")))}</p>'
            f'<table class="answers"><tr><td><b>Prediction:</b></td><td class="prediction">'
            f'{escape("(no answer)" if prediction is None else str(prediction))}</td>'
            f'<td><b>Gold:</b></td><td class="gold">{escape(str(record.get("answer", "")))}</td>'
            f'<td class="ref">type {escape(str(record.get("question_type")))}'
            f' · rounds {escape(_fmt(record.get("rounds")))} · calls {escape(_fmt(record.get("tool_calls")))}'
            f' · failures {escape(_fmt(record.get("tool_failures")))}'
            f' · valid format {escape(_fmt(record.get("valid_format")))}</td></tr></table>'
            f'{_steps(conversation, images_dir, cache)}</section>'
        )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_summary_table(records, summary)}<nav>{''.join(nav)}</nav>"
        f"{''.join(sections)}</body></html>\n"
    )


def write_viewer(results_jsonl: str | Path, out_html: str | Path, *, summary: dict[str, Any] | None = None,
                 title: str | None = None) -> Path:
    """Write the viewer for ``results_jsonl`` to ``out_html``; returns the path."""
    from thinkimg.eval.evaluator import read_results

    results_jsonl, out_html = Path(results_jsonl), Path(out_html)
    records = read_results(results_jsonl)
    html = render_viewer(records, results_jsonl.parent, title=title or f"ThinkIMG evaluation: {results_jsonl.name}",
                         summary=summary)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_html.with_name(out_html.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out_html)
    return out_html
