"""Render a `Result` for people: the terminal report and the spec's clause texts."""

import os
import sys
import textwrap

from . import clauses as spec

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


def render_result(result, *, verbose=False, colour=None, stream=None):
    stream = stream or sys.stdout
    colour = _use_colour(stream) if colour is None else colour
    out = []
    out.append(f"{result.target}  [{result.kind}]")
    topic = None
    for c in result.clauses:
        if c.status == "skipped" and c.message.startswith("not applicable") and not verbose:
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
            if c.reproduce:
                out.append(f"        reproduce: {c.reproduce}")
        elif verbose and c.message:
            out.append(f"        {c.message}")
    counts = {s: sum(1 for c in result.clauses if c.status == s) for s in MARKS}
    failed = [c.id for c in result.clauses if c.status == "failed"]
    verdict = {"conforms": "conforms", "does_not_conform": "DOES NOT CONFORM", "error": "could not be judged (suite error)"}[result.verdict]
    warn = [c.id for c in result.clauses if c.status == "failed" and c.level == "SHOULD"]
    summary = (
        f"  => {result.kind} {verdict}: {counts['passed']} passed, {counts['failed']} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + f", {counts['not_checked']} not checked, {counts['error']} errors"
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
