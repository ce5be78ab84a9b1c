"""Render a `Result` for people: the terminal report and the spec's clause texts."""

import os
import sys
import textwrap

from . import clauses as spec
from .declarations import PREFIX as DECLARED

MARKS = {"passed": "✓", "failed": "✗", "error": "!", "skipped": "–", "not_checked": "·"}
COLOURS = {"passed": "32", "failed": "31", "error": "35", "skipped": "90", "not_checked": "33"}


def _use_colour(stream):
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def _paint(text, status, colour):
    return f"\033[{COLOURS[status]}m{text}\033[0m" if colour else text


def _counterexample_lines(ce):
    if not ce:
        return []
    lines = []
    case = ce.get("case") if isinstance(ce.get("case"), dict) else None
    if case:
        lines.append(f"{case['call']} on input of shape {tuple(case['input_shape'])} ({case['dtype']}, seed {case['seed']}, scale {case['scale']})")
    elif "call" in ce:
        lines.append(str(ce["call"]))
    extras = {k: v for k, v in ce.items() if k not in ("case", "call")}
    if extras:
        lines.append(", ".join(f"{k} = {v}" for k, v in extras.items()))
    return lines


def _declared(c):
    return c.status == "skipped" and c.message.startswith(DECLARED)


def _hidden(c):
    """Clauses the kind does not have are left out of short reports; declared ones never are."""
    return c.status == "skipped" and c.message.startswith("not applicable") and not c.message.startswith(DECLARED)


def render_result(result, *, verbose=False, colour=None, stream=None):
    stream = stream or sys.stdout
    colour = _use_colour(stream) if colour is None else colour
    out = []
    out.append(f"{result.target}  [{result.kind}]")
    topic = None
    drawn = {}  # influence maps already shown: key -> clause
    for c in result.clauses:
        if _hidden(c) and not verbose:
            continue
        clause = spec.get(c.id)
        if clause.topic != topic:
            topic = clause.topic
            out.append(f"  {clause.topic}. {clause.topic_title}")
        level = "" if clause.level == "MUST" else f" ({clause.level})"
        out.append("    " + _paint(f"{MARKS[c.status]} {c.id:<10}", c.status, colour) + f" {clause.title}{level}")
        if c.status in ("failed", "error"):
            wrap = lambda s, ind="        ": textwrap.fill(s, 100, initial_indent=ind, subsequent_indent=ind + "  ")  # noqa: E731
            out.append(wrap(f"clause:   {clause.text}"))
            out.append(wrap(f"problem:  {c.message}"))
            if c.expected or c.observed:
                out.append(wrap(f"expected: {c.expected}    observed: {c.observed}"))
            for line in _counterexample_lines(c.counterexample):
                out.append(wrap(f"smallest counterexample: {line}"))
            if getattr(c, "influence", None):
                from .influence import map_key, to_text

                first = drawn.setdefault(map_key(c.influence), c.id)
                shown = to_text(c.influence) if first == c.id else f"which input tokens change which outputs: as under {first} above"
                out += ["        " + line for line in shown.splitlines()]
            if c.reproduce:
                out.append(f"        reproduce: {c.reproduce}")
        elif c.message and (verbose or _declared(c)):
            out.append(f"        {c.message}")
    counts = {s: sum(1 for c in result.clauses if c.status == s) for s in MARKS}
    failed = [c.id for c in result.clauses if c.status == "failed"]
    verdict = {"conforms": "conforms", "does_not_conform": "DOES NOT CONFORM", "error": "could not be judged (suite error)"}[result.verdict]
    warn = [c.id for c in result.clauses if c.status == "failed" and c.level == "SHOULD"]
    summary = (
        f"  => {result.kind} {verdict}: {counts['passed']} passed, {counts['failed']} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + f", {counts['not_checked']} not checked, {counts['error']} errors"
        + (f", {sum(map(_declared, result.clauses))} declared not applicable" if any(map(_declared, result.clauses)) else "")
        + (f"; SHOULD deviations: {', '.join(warn)}" if warn and result.verdict == "conforms" else "")
        + f"  [{result.duration_s:.1f} s]"
    )
    out.append(_paint(summary, "passed" if result.verdict == "conforms" else "failed", colour))
    print("\n".join(out), file=stream)


def render_header(results_meta, stream=None):
    stream = stream or sys.stdout
    tool = results_meta["tool"]
    print(
        f"attnspec {tool['version']} (spec {tool['spec_version']}) · profile {results_meta['profile']} · "
        f"seed {results_meta['seed']}  (replay with --seed {results_meta['seed']})",
        file=stream,
    )


def render_clause(clause):
    body = [
        f"{clause.id}@{clause.revision}  [{clause.level}]  {clause.title}",
        f"section {clause.topic}: {clause.topic_title}",
        "",
        textwrap.fill(clause.text, 88),
        "",
        textwrap.fill("Why: " + clause.rationale, 88),
        "",
        textwrap.fill("Common mistake: " + clause.mistake, 88),
        "",
        f"Cite as: attnspec {clause.id}@{clause.revision}",
    ]
    return "\n".join(body)


def render_list():
    lines = []
    for t in spec.topics():
        lines.append(f"{t.number}. {t.title}")
        for c in t.clauses:
            lines.append(f"   {c.id:<10} {c.level:<22} {c.title}")
    return "\n".join(lines)


def render_markdown_spec():
    """The whole spec as one Markdown document (spec/SPEC.md is generated from it)."""
    lines = ["# attnspec specification", "", "Generated from `spec/clauses/*.toml` by `attnspec spec --markdown`; do not edit by hand.", ""]
    for t in spec.topics():
        lines += [f"## {t.number}. {t.title}", "", t.intro, ""]
        for c in t.clauses:
            lines += [
                f"### {c.id}@{c.revision} — {c.title}",
                "",
                f"**{c.level}.** {c.text}",
                "",
                f"*Rationale.* {c.rationale}",
                "",
                f"*Common mistake.* {c.mistake}",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


# -- rich views (notebooks): `Result` and `Results` delegate _repr_markdown_ / _repr_html_ here -----
VERDICTS = {"conforms": "conforms", "does_not_conform": "does not conform", "error": "could not be judged (suite error)"}


def render_text(result, verbose=False):
    """The terminal report as a string, without colour (what `print(result)` shows)."""
    import io

    buf = io.StringIO()
    render_result(result, verbose=verbose, colour=False, stream=buf)
    return buf.getvalue().rstrip("\n")


def _shown(result):
    return [c for c in result.clauses if not _hidden(c)]


def _summary(result):
    counts = {s: sum(1 for c in result.clauses if c.status == s) for s in MARKS}
    failed = [c.id for c in result.clauses if c.status == "failed"]
    return (f"{counts['passed']} passed, {counts['failed']} failed" + (f" ({', '.join(failed)})" if failed else "")
            + f", {counts['not_checked']} not checked, {counts['error']} errors · profile {result.profile} · "
            f"seed {result.seed} · {result.duration_s:.1f} s")


def _note(c, fmt):
    """Why a clause was not checked or skipped, formatted by `fmt`; failures get their own section."""
    return fmt(c.message) if c.status in ("not_checked", "skipped") and c.message else ""


def _failure_fields(c):
    """(label, text) pairs shown under a failed clause: all of it plain text from the result."""
    fields = [("diagnosis", c.message or "(no message)")]
    if c.expected or c.observed:
        fields.append(("expected / observed", f"{c.expected} / {c.observed}"))
    if c.counterexample:
        fields.append(("smallest counterexample", "; ".join(_counterexample_lines(c.counterexample))))
    try:
        fields.append(("the clause says", spec.get(c.id).text))
    except Exception:  # noqa: BLE001 - a result from another spec version
        pass
    return fields


def _md(text):
    """Plain text for Markdown: no HTML from the code under test gets through, no accidental formatting."""
    import html

    text = str(text).replace("\\", "\\\\")
    for ch in "`*[]|":  # intraword underscores (head_dim) are literal in CommonMark
        text = text.replace(ch, "\\" + ch)
    return html.escape(text, quote=False).replace("\n", " ")


def render_markdown(result):
    """A Markdown report: verdict, clause table, then each failure with its diagnosis and reproduction."""
    import html

    mark = "✓" if result.verdict == "conforms" else "✗"
    out = [f"**{mark} {_md(result.target)}** [{_md(result.kind)}]: {VERDICTS.get(result.verdict, _md(result.verdict))}",
           "", _md(_summary(result)), "", "| | clause | title |", "|:-:|---|---|"]
    out += [f"| {MARKS.get(c.status, '?')} | {_md(c.id)} | {_md(c.title)}{_note(c, lambda t: ' — *' + _md(t) + '*')} |"
            for c in _shown(result)]
    for c in result.clauses:
        if c.status in ("failed", "error"):
            out += ["", f"**{MARKS[c.status]} {_md(c.id)}**: {_md(c.title)}", ""]
            out += [f"- {label}: {_md(text)}" for label, text in _failure_fields(c)]
            if c.reproduce:
                out.append(f"- reproduce: <code>{html.escape(c.reproduce)}</code>")
    return "\n".join(out) + "\n"


def render_html(result):
    """The same report as HTML; every string from the result is escaped."""
    from html import escape as e

    colour = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8250df"}
    good = result.verdict == "conforms"
    rows = "".join(
        f'<tr><td style="color:{colour.get(c.status, "#6e7781")}" title="{e(c.status)}">{MARKS.get(c.status, "?")}</td>'
        f"<td><code>{e(c.id)}</code></td><td style=\"text-align:left\">{e(c.title)}"
        f"{_note(c, lambda t: '<br><small>' + e(t) + '</small>')}</td></tr>"
        for c in _shown(result)
    )
    failures = []
    for c in result.clauses:
        if c.status in ("failed", "error"):
            items = "".join(f"<li><b>{e(label)}</b>: {e(text)}</li>" for label, text in _failure_fields(c))
            if c.reproduce:
                items += f"<li><b>reproduce</b>: <code>{e(c.reproduce)}</code></li>"
            failures.append(f'<div style="margin-top:0.6em"><b style="color:{colour[c.status]}">{MARKS[c.status]} '
                            f"{e(c.id)}</b>: {e(c.title)}<ul>{items}</ul></div>")
    return (
        f'<div class="attnspec-result"><p><b style="color:{colour["passed" if good else "failed"]}">'
        f"{'✓' if good else '✗'} {e(result.target)}</b> [{e(result.kind)}]: {e(VERDICTS.get(result.verdict, result.verdict))}"
        f"<br><small>{e(_summary(result))}</small></p>"
        f"<details open><summary>clauses</summary>"
        f'<table><thead><tr><th></th><th>clause</th><th style="text-align:left">title</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></details>{''.join(failures)}</div>"
    )
