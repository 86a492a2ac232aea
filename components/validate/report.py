"""Validation artifacts: result.json (machines), report.md and report.html (people, offline).

GX Data Docs pull their CSS and JS from CDNs and render unstyled without network, so the report
is our own: Markdown, and one HTML file with its style inline and no external reference.
"""

from __future__ import annotations

import html

from components.validate.result import RESULT_FILE, Outcome, ValidationResult, fmt
from taml.core import storage

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.fail td{background:#fdecea}tr.warn td{background:#fff4e0}
.badge{display:inline-block;padding:.15em .6em;border-radius:.3em;color:#fff;font-weight:600}
.pass{background:#2e7d32}.failed{background:#c62828}code{font-size:.95em}
"""


def write_artifacts(result: ValidationResult, out_dir: str) -> None:
    storage.write_json(storage.join(out_dir, RESULT_FILE), result.to_dict())
    storage.write_text(storage.join(out_dir, "report.md"), markdown(result))
    storage.write_text(storage.join(out_dir, "report.html"), render_html(result))


def markdown(result: ValidationResult) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [
        f"# Validation of {result.date}: {verdict}",
        "",
        f"{result.rows:,} samples; {len(result.failed_critical)} critical failure(s), "
        f"{len(result.failed_warnings)} warning(s); {result.seconds:.2f} s.",
        "",
    ]
    for title, outcomes in (
        ("Critical suite (stops the run)", result.critical),
        ("Warning suite", result.warnings),
    ):
        lines += [
            f"## {title}",
            "",
            "| check | result | observed | expected | meaning |",
            "|---|---|---|---|---|",
        ]
        for o in outcomes:
            lines.append(
                f"| `{o.name}` | {_verdict(o)} | {_cell(o.observed)}{_err(o)} | {_cell(o.expected)} | {o.description} |"
            )
        lines.append("")
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result.skipped] + [""]
    return "\n".join(lines)


def render_html(result: ValidationResult) -> str:
    verdict = "PASSED" if result.passed else "FAILED"
    cls = "pass" if result.passed else "failed"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Validation {html.escape(result.date)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Validation of {html.escape(result.date)} <span class='badge {cls}'>{verdict}</span></h1>",
        f"<p>{result.rows:,} samples; {len(result.failed_critical)} critical failure(s), "
        f"{len(result.failed_warnings)} warning(s); {result.seconds:.2f} s.</p>",
    ]
    for title, outcomes, bad in (
        ("Critical suite (stops the run)", result.critical, "fail"),
        ("Warning suite (reported only)", result.warnings, "warn"),
    ):
        parts.append(
            f"<h2>{title}</h2><table><tr><th>check</th><th>result</th><th>observed</th>"
            "<th>expected</th><th>meaning</th><th>expectation</th></tr>"
        )
        for o in sorted(outcomes, key=lambda o: o.success):
            parts.append(
                f"<tr class='{'' if o.success else bad}'><td><code>{html.escape(o.name)}</code></td>"
                f"<td>{_verdict(o)}</td><td>{html.escape(fmt(o.observed))}{html.escape(_err(o))}</td>"
                f"<td>{html.escape(fmt(o.expected))}</td><td>{html.escape(o.description)}</td>"
                f"<td><code>{html.escape(o.expectation)}</code></td></tr>"
            )
        parts.append("</table>")
    if result.skipped:
        parts.append(
            "<h2>Skipped</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in result.skipped) + "</ul>"
        )
    parts.append("</body></html>\n")
    return "".join(parts)


def _verdict(o: Outcome) -> str:
    return "ok" if o.success else "**FAILED**" if o.suite == "critical" else "**warn**"


def _err(o: Outcome) -> str:
    return f" (error: {o.error})" if o.error else ""


def _cell(v) -> str:
    return fmt(v).replace("|", "\\|")
