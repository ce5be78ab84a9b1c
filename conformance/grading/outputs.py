"""Every file `attnspec grade` writes, each rendered from the submission records.

Per submission (written atomically as soon as it is graded):
  submissions/ID.json   the record: status, score, isolation, flags, and for
                        each class the canonical `Result` (results.py) with
                        the rubric's points per clause
  feedback/ID.md        what the student reads: score, what failed and why
  feedback/ID.KIND.CLAUSE.png  the influence map of a causal failure (with matplotlib)
Per batch: grades.csv, junit.xml, summary.md (the class: scores and the
clauses missed most), batch.json (what identifies the run: tool and rubric
fingerprint, the shard, whether it finished; `attnspec merge` checks it),
optionally Gradescope's results.json, and the summary appended to
$GITHUB_STEP_SUMMARY.  Student text (stdout, messages) is
bounded and fenced, and CSV cells are guarded against formula injection.
"""

import csv
import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from urllib.parse import quote

from ..config import KINDS

SUMMARY_BUDGET = 512 << 10  # GitHub allows 1 MiB per step summary
EXCERPT = 2000


def write_atomic(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_submission(out_dir, sid):
    try:
        with open(os.path.join(out_dir, "submissions", f"{sid}.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_submission(out_dir, record):
    sid = record["submission"]["id"]
    images = write_images(out_dir, record)
    write_atomic(os.path.join(out_dir, "feedback", f"{sid}.md"), feedback(record, images))
    write_atomic(os.path.join(out_dir, "submissions", f"{sid}.json"), json.dumps(record, indent=2, default=str))


def write_batch_file(out_dir, batch):
    """batch.json: see grade.batch_info.  Also makes submissions/, so an empty shard is still an output folder."""
    os.makedirs(os.path.join(out_dir, "submissions"), exist_ok=True)
    write_atomic(os.path.join(out_dir, "batch.json"), json.dumps(batch, indent=2))


def read_batch(out_dir):
    """batch.json as a dict; None when there is none (an older attnspec, or records put there by hand).

    Raises ValueError when it cannot be read."""
    path = os.path.join(out_dir, "batch.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    part = data.get("shard") if isinstance(data, dict) else None
    if not isinstance(data, dict) or part is not None and not (
            isinstance(part, dict) and isinstance(part.get("of"), int) and isinstance(part.get("index"), list)
            and all(isinstance(i, int) and 1 <= i <= part["of"] for i in part["index"])):
        raise ValueError(f"{path} is not an attnspec batch file")
    return data


def shard_name(part):
    """'2/4' for one shard, '1,2/4' for a merge of some shards of four."""
    return ",".join(map(str, part["index"])) + f"/{part['of']}"


def load_records(out_dir):
    folder = os.path.join(out_dir, "submissions")
    records = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".json"):
            record = read_submission(out_dir, name[:-5])
            if record:
                records.append(record)
    return records


def _fence(text, limit=EXCERPT):
    text = text if len(text) <= limit else text[:limit] + "\n[truncated]"
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _fmt(x):
    return f"{x:g}"


def _clauses(cls):
    result = cls.get("result") or {}
    return result.get("clauses", [])


def write_images(out_dir, record):
    """feedback/ID.KIND.CLAUSE.png for each influence map (with matplotlib): {(kind, clause): file name}.

    Pictures of clauses that no longer fail (a regrade) are removed."""
    from .. import influence

    sid, folder, images = record["submission"]["id"], os.path.join(out_dir, "feedback"), {}
    os.makedirs(folder, exist_ok=True)
    for cls in record.get("classes", []):
        drawn = set()
        for c in _clauses(cls):
            m = c.get("influence")
            if not m or c["status"] != "failed" or influence.map_key(m) in drawn:
                continue  # the feedback shows a repeated map once
            drawn.add(influence.map_key(m))
            name = influence.png_name(sid, c["id"], cls["kind"])
            if influence.write_png(m, os.path.join(folder, name), quiet=True):
                images[(cls["kind"], c["id"])] = name
    for kind in KINDS:
        for cid in influence.CLAUSES:
            name = influence.png_name(sid, cid, kind)
            if (kind, cid) not in images and os.path.exists(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
    return images


def feedback(record, images=None):
    """Markdown a student can act on: score, status, then each failed clause with its diagnosis.

    `images`: {(kind, clause): file name} of influence-map pictures next to the Markdown."""
    from ..influence import map_key, to_text

    images = images or {}
    sub = record["submission"]
    lines = [f"# attnspec feedback: {sub['id']}", "",
             f"**Score: {_fmt(record['score'])} / {_fmt(record['max_score'])}**, status: `{record['status']}`", ""]
    if record.get("detail"):
        lines += [record["detail"], ""]
    if record["status"] == "flagged":
        lines += ["Your code imports the test suite or the book's package (`attnspec`, `llms_from_scratch`). "
                  "Write the classes yourself; submissions that delegate get no credit.", ""]
        seen = [f.rpartition(" [")[0] for f in record.get("flags", []) if f.endswith("[source]")]
        if seen:
            lines += ["Found: " + "; ".join(f"`{f}`" for f in seen[:10]), ""]
    for cls in record.get("classes", []):
        lines += [f"## {cls['kind']}: {_fmt(cls['score'])} / {_fmt(cls['max_score'])}", ""]
        if cls["status"] == "missing":
            lines += [f"Not graded: {cls['detail']}.", ""]
            continue
        if cls.get("detail"):
            lines += [f"Your code {cls['detail']}.", ""]
        rows = [c for c in _clauses(cls) if c["id"] in cls["points"]]
        lines += ["| clause | | points | title |", "|---|---|---|---|"]
        mark = {"passed": "✓", "failed": "✗", "error": "✗", "not_checked": "–", "skipped": "–"}
        for c in rows:
            got, most = cls["points"][c["id"]]
            lines.append(f"| {c['id']} | {mark.get(c['status'], '?')} | {_fmt(got)}/{_fmt(most)} | {c['title']} |")
        lines.append("")
        drawn = {}
        for c in rows:
            if c["status"] in ("failed", "error"):
                lines += [f"### {c['id']}: {c['title']}", "", c["message"] or "(no message)", ""]
                if c.get("expected") or c.get("observed"):
                    lines += [f"- expected: {c.get('expected', '')}", f"- observed: {c.get('observed', '')}", ""]
                if c.get("counterexample"):
                    lines += ["Smallest failing case:", "", _fence(json.dumps(c["counterexample"], default=str)), ""]
                if c.get("influence"):
                    first = drawn.setdefault(map_key(c["influence"]), c["id"])
                    if first != c["id"]:
                        lines += [f"Which input tokens change which outputs: as under {first} above.", ""]
                    else:
                        lines += [_fence(to_text(c["influence"]), limit=4 * EXCERPT), ""]
                        if (cls["kind"], c["id"]) in images:
                            name = images[(cls["kind"], c["id"])]
                            lines += [f"![{c['id']}: which input tokens change which outputs]({quote(name)})", ""]
                if c.get("reproduce"):
                    lines += [f"Reproduce locally: `{c['reproduce']}`", ""]
    if record.get("stderr"):
        lines += ["## What your code wrote to stderr (not graded)", "", _fence(record["stderr"]), ""]
    iso = record.get("isolation") or {}
    lines += [f"_Graded with attnspec {record['tool']['version']} (spec {record['tool']['spec_version']}), "
              f"profile {record['rubric'].get('profile')}, seed {record['rubric'].get('seed')}; "
              f"network: {iso.get('network', 'n/a')}._", ""]
    return "\n".join(lines)


def _cell(value):
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def grades_csv(records):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["submission", "score", "max_score", "percent", "status", "detail", "flags", "sha256"])
    for r in records:
        pct = 100 * r["score"] / r["max_score"] if r["max_score"] else 0.0
        writer.writerow([_cell(r["submission"]["id"]), _fmt(r["score"]), _fmt(r["max_score"]), f"{pct:.1f}",
                         _cell(r["status"]), _cell(r.get("detail", "")[:300]), _cell("; ".join(r.get("flags", []))),
                         r["submission"]["sha256"]])
    return buf.getvalue()


def junit(records):
    """JUnit XML: one testsuite per submission, one testcase per graded clause."""
    root = ET.Element("testsuites", name="attnspec grade")
    for r in records:
        suite = ET.SubElement(root, "testsuite", name=r["submission"]["id"])
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for cls in r.get("classes", []):
            by_id = {c["id"]: c for c in _clauses(cls)}
            for cid, (got, most) in cls["points"].items():
                c = by_id.get(cid, {"status": "not_checked", "title": "", "message": cls.get("detail", "")})
                case = ET.SubElement(suite, "testcase", classname=f"{r['submission']['id']}.{cls['kind']}",
                                     name=f"{cid} {c.get('title', '')}".strip())
                props = ET.SubElement(case, "properties")
                ET.SubElement(props, "property", name="points", value=f"{_fmt(got)}/{_fmt(most)}")
                counts["tests"] += 1
                msg = (c.get("message") or "")[:500]
                if c["status"] == "failed":
                    ET.SubElement(case, "failure", message=msg.splitlines()[0] if msg else "failed").text = msg
                    counts["failures"] += 1
                elif c["status"] == "error":
                    ET.SubElement(case, "error", message=msg.splitlines()[0] if msg else "error").text = msg
                    counts["errors"] += 1
                elif c["status"] != "passed":
                    ET.SubElement(case, "skipped", message=msg or c["status"])
                    counts["skipped"] += 1
        if not r.get("classes") or r["status"] not in ("completed",):
            case = ET.SubElement(suite, "testcase", classname=r["submission"]["id"], name="submission status")
            counts["tests"] += 1
            if r["status"] != "completed":
                ET.SubElement(case, "failure", message=r["status"]).text = r.get("detail", "")
                counts["failures"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def missed_clauses(records):
    """[(clause id, kind, submissions that missed it, submissions graded on it)], most missed first."""
    tally = {}
    for r in records:
        for cls in r.get("classes", []):
            if cls["status"] == "missing":
                continue
            status = {c["id"]: c["status"] for c in _clauses(cls)}
            for cid in cls["points"]:
                key = (cid, cls["kind"])
                missed, seen = tally.get(key, (0, 0))
                tally[key] = (missed + (status.get(cid) != "passed"), seen + 1)
    rows = [(cid, kind, m, n) for (cid, kind), (m, n) in tally.items() if m]
    return sorted(rows, key=lambda row: (-row[2], row[0], row[1]))


def summary(records, shard=None):
    """The class summary in GitHub-flavoured Markdown, within the step-summary budget.

    `shard`: the batch's shard (batch.json), when it is not the whole class."""
    total = len(records)
    lines = ["## attnspec grades", "", f"{total} submissions graded.", ""]
    if shard and len(shard["index"]) < shard["of"]:
        lines += [f"Shard {shard_name(shard)} only: {shard.get('submissions', '?')} submissions in all "
                  f"(`attnspec merge` the shards for the whole class).", ""]
    lines += ["| submission | score | status |", "|---|---|---|"]
    for r in records:
        lines.append(f"| {r['submission']['id']} | {_fmt(r['score'])} / {_fmt(r['max_score'])} | "
                     f"{r['status'].replace('|', '/')} |")
    lines += ["", "### Clauses missed most", "", "| clause | class | missed by |", "|---|---|---|"]
    for cid, kind, missed, seen in missed_clauses(records)[:30]:
        lines.append(f"| {cid} | {kind} | {missed} of {seen} |")
    iso = next((r["isolation"] for r in records if r.get("isolation")), None)
    if iso:
        lines += ["", "### Isolation", "", f"- network: {iso.get('network')}", f"- filesystem: {iso.get('filesystem')}",
                  f"- uid: {iso.get('uid')}", f"- limits: {iso.get('limits')}"]
        lines += [f"- warning: {w}" for w in iso.get("warnings", [])]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > SUMMARY_BUDGET:
        text = text.encode()[:SUMMARY_BUDGET].decode(errors="ignore") + "\n\n[truncated]\n"
    return text


def gradescope(record):
    """Gradescope's results.json for one submission: one test per graded clause."""
    tests = []
    for cls in record.get("classes", []):
        by_id = {c["id"]: c for c in _clauses(cls)}
        for cid, (got, most) in cls["points"].items():
            c = by_id.get(cid, {"status": "not_checked", "title": "", "message": cls.get("detail", "")})
            tests.append({
                "name": f"{cls['kind']} {cid}: {c.get('title', '')}".strip(),
                "number": cid, "score": got, "max_score": most,
                "status": "passed" if c["status"] == "passed" else "failed",
                "output": (c.get("message") or c["status"])[:4000], "output_format": "md",
                "tags": [cls["kind"], cid.split("-")[0]],
            })
    head = f"Score {_fmt(record['score'])} / {_fmt(record['max_score'])}; status: {record['status']}."
    if record.get("detail"):
        head += f"\n\n{record['detail']}"
    out = {"score": record["score"], "output": head, "output_format": "md", "tests": tests,
           "execution_time": record.get("duration_s", 0),
           "extra_data": {"tool": record["tool"], "rubric": record["rubric"], "isolation": record.get("isolation"),
                          "flags": record.get("flags", [])}}
    if record.get("stdout") or record.get("stderr"):
        out["tests"].append({"name": "Program output (instructors only)", "status": "passed", "visibility": "hidden",
                             "output": _fence(record.get("stdout", "") + record.get("stderr", ""))})
    return json.dumps(out, indent=2)


def write_batch(out_dir, records, *, gradescope_path=None, batch=None):
    """grades.csv, junit.xml, summary.md (and batch.json, results.json, $GITHUB_STEP_SUMMARY) from the records."""
    write_atomic(os.path.join(out_dir, "grades.csv"), grades_csv(records))
    write_atomic(os.path.join(out_dir, "junit.xml"), junit(records))
    text = summary(records, shard=(batch or {}).get("shard"))
    write_atomic(os.path.join(out_dir, "summary.md"), text)
    if gradescope_path:
        write_atomic(gradescope_path, gradescope(records[0]))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as fh:
            fh.write(text)
    if batch is not None:  # last: it says the batch finished
        write_batch_file(out_dir, batch)
