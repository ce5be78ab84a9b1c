"""`attnspec grade` over the hostile zoo: one batch (run once per test session), many checks.

The batch holds correct, buggy and hostile submissions (tests/hostile/) plus a
folder submission; it is graded through the CLI in a subprocess with
absolute paths on its command line (which hostile code reads from /proc).
"""

import argparse
import csv
import fcntl
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from attnspec.grading.grade import UID_BASE

HOSTILE = Path(__file__).parent / "hostile"
RUBRIC = HOSTILE / "rubric.toml"
FILES = sorted(HOSTILE.glob("*.py"))
FULL = 12.0  # the test rubric's total


def _grade(out, subs, *extra, env=None):
    cmd = [sys.executable, "-m", "attnspec.grading.cli", "grade", *map(str, subs), "--out", str(out),
           "--rubric", str(RUBRIC), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """(out dir, {id: record}, rows, completed process): graded once, shared by xdist workers."""
    shared = tmp_path_factory.getbasetemp().parent / "hostile-batch"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done.json").exists():
            folder = shared / "subs" / "student_folder"
            folder.mkdir(parents=True)
            (folder / "helpers.py").write_text("MASKED = False\n")
            body = (HOSTILE / "buggy_no_mask.py").read_text()
            (folder / "attention.py").write_text("from helpers import MASKED  # a sibling import\n" + body)
            (folder / "notes.py").write_text("print('not graded: defines no book class')\n")
            summary = shared / "step-summary.md"
            env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary))
            proc = _grade(shared / "out", [*FILES, folder], "--jobs", "2", env=env)
            (shared / "done.json").write_text(json.dumps({"rc": proc.returncode, "stderr": proc.stderr[-5000:]}))
    done = json.loads((shared / "done.json").read_text())
    out = shared / "out"
    records = {p.stem: json.loads(p.read_text()) for p in (out / "submissions").glob("*.json")}
    with open(out / "grades.csv") as fh:
        rows = {r["submission"]: r for r in csv.DictReader(fh)}
    return out, records, rows, done


def test_the_batch_completes_with_every_submission_graded(batch):
    out, records, rows, done = batch
    assert done["rc"] == 0, done["stderr"]
    assert set(rows) == {p.stem for p in FILES} | {"student_folder"}
    for sid, row in rows.items():
        assert float(row["max_score"]) == FULL
        assert (out / "feedback" / f"{sid}.md").read_text().startswith(f"# attnspec feedback: {sid}")


def test_correct_submissions_get_full_marks(batch):
    _, records, rows, _ = batch
    for sid in ("correct_mha", "correct_all", "h_output_flood"):
        assert float(rows[sid]["score"]) == FULL, records[sid]["classes"][0]["points"]
        assert rows[sid]["status"] == "completed"


def test_no_hostile_submission_gets_marks_it_did_not_earn(batch):
    _, _, rows, _ = batch
    buggy = float(rows["buggy_no_mask"]["score"])
    assert buggy < FULL
    for sid, row in rows.items():
        if sid.startswith("h_") and sid != "h_output_flood":
            assert float(row["score"]) <= buggy, (sid, row)


def _passed(record):
    """Clause IDs that earned points in a record."""
    return {cid for cls in record.get("classes", []) for cid, (got, _) in cls["points"].items() if got > 0}


@pytest.mark.parametrize("sid, status", [
    ("h_segfault", "crashed: signal 11"),
    ("h_infinite_loop", "timeout"),
    ("h_sleep_import", "timeout during import"),
    ("h_sys_exit_import", "exited during import"),
    ("h_os_exit_forward", "exited: status 0"),
    ("h_memory_bomb", "memory limit"),
    ("h_import_reference", "flagged"),
    ("h_import_reference_dynamic", "flagged"),
    ("h_import_book", "flagged"),
])
def test_misbehaviour_gets_a_clear_status_and_no_credit(batch, sid, status):
    _, records, rows, _ = batch
    assert rows[sid]["status"] == status, records[sid]["detail"]
    if status == "flagged":  # delegating to the suite or the book earns nothing at all
        assert float(rows[sid]["score"]) == 0
        return
    # only the constructor signature (IFACE-1, read without running the code) can be earned
    assert float(rows[sid]["score"]) <= 1, _passed(records[sid])
    assert _passed(records[sid]) <= {"IFACE-1"}


def test_the_book_package_import_attempt_is_flagged_although_not_installed(batch):
    flags = batch[1]["h_import_book"]["flags"]
    assert any(f.startswith("llms_from_scratch") and "[run time]" in f for f in flags)
    assert any("[source]" in f for f in flags)


def test_interface_lies_score_nothing(batch):
    records = batch[1]
    for sid in ("h_tensor_subclass", "h_tuple_return"):
        cls = records[sid]["classes"][0]
        iface = next(c for c in cls["result"]["clauses"] if c["id"] == "IFACE-2")
        assert iface["status"] == "failed" and _passed(records[sid]) <= {"IFACE-1"}


def test_patched_comparisons_and_global_state_change_nothing(batch):
    _, records, rows, _ = batch
    assert rows["h_allclose_patch"]["score"] == rows["buggy_no_mask"]["score"]
    assert float(rows["h_global_state"]["score"]) < FULL  # its own global softmax is wrong
    statuses = {c["id"]: c["status"] for c in records["h_allclose_patch"]["classes"][0]["result"]["clauses"]}
    assert "failed" in {statuses["CAUSAL-1"], statuses["CAUSAL-2"]}


def test_a_folder_submission_is_graded_like_the_same_file(batch):
    records = batch[1]
    folder, single = records["student_folder"], records["buggy_no_mask"]
    assert folder["submission"]["files"] == ["attention.py"]
    assert folder["score"] == single["score"]
    strip = lambda r: [(c["id"], c["status"]) for c in r["classes"][0]["result"]["clauses"]]  # noqa: E731
    assert strip(folder) == strip(single)  # same seed, same grade


def test_isolation_layers_are_reported_and_active(batch):
    records = batch[1]
    iso = records["correct_mha"]["isolation"]
    assert iso["limits"]["nproc"] > 0 and iso["limits"]["address_space_mb"] > 0
    if os.geteuid() == 0:
        assert iso["network"].startswith("network namespace")
        assert isinstance(iso["uid"], int) and iso["uid"] >= UID_BASE
        assert any(p.endswith("reference") for p in iso["hidden"])
    assert iso["network"] != "absent" or iso["warnings"]


def test_network_and_other_students_files_are_out_of_reach(batch):
    records = batch[1]
    net = records["h_network"]["stdout"]
    assert "network blocked" in net and "REACHABLE" not in net
    assert "READ OTHER SUBMISSION" not in records["h_read_others"]["stdout"]
    if os.geteuid() == 0:
        assert "WROTE /" not in records["h_fake_results"]["stdout"]
        assert "WRITABLE" not in records["h_write_package"]["stdout"]
        assert "KILLED" not in records["h_kill_parent"]["stdout"]
    assert not (Path(__file__).parents[1] / "conformance" / "grading" / "pwned.py").exists()


def test_outputs_are_intact_despite_forgeries(batch):
    out, records, rows, _ = batch
    assert records["correct_mha"]["score"] == FULL  # the fake correct_mha.json was not written
    assert not (out / "results.json").exists()
    forged = records["h_forged_stdout"]
    assert forged["score"] < FULL and "::notice" in forged["stdout"]
    flood = records["h_output_flood"]
    assert len(flood["stdout"]) < 70_000 and "truncated" in flood["stdout"]
    root = ET.parse(out / "junit.xml").getroot()
    assert len(root.findall("testsuite")) == len(rows)
    summary = (out / "summary.md").read_text()
    assert "Clauses missed most" in summary and "CAUSAL-2" in summary
    assert (out.parent / "step-summary.md").read_text() == summary


def test_no_process_is_left_behind(batch, tmp_path_factory):
    left = []
    # other tests' grading runs use the same uids while they run (test_notebooks holds this lock meanwhile)
    with open(tmp_path_factory.getbasetemp().parent / "grading-uids.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    uid = os.stat(f"/proc/{entry}").st_uid
                except OSError:
                    continue
                if UID_BASE <= uid < UID_BASE + len(FILES) + 1:
                    left.append((entry, uid))
    assert not left


def test_resume_skips_finished_submissions(batch, tmp_path):
    out, records, _, _ = batch
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    picks = [HOSTILE / "correct_mha.py", HOSTILE / "buggy_no_mask.py"]
    proc = _grade(copy, picks, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("resumed") == 2
    again = json.loads((copy / "submissions" / "correct_mha.json").read_text())
    assert again == records["correct_mha"]


def test_merge_reassembles_shards(batch, tmp_path):
    out, records, rows, _ = batch
    from attnspec.grading import cli, outputs

    shards = [tmp_path / "s1", tmp_path / "s2"]
    for i, record in enumerate(sorted(records.values(), key=lambda r: r["submission"]["id"])):
        outputs.write_submission(shards[i % 2], record)
    assert cli.main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    with open(tmp_path / "merged" / "grades.csv") as fh:
        merged = {r["submission"]: r for r in csv.DictReader(fh)}
    assert merged == rows


def test_gradescope_mode_writes_results_json(batch, tmp_path):
    _, records, _, _ = batch
    from attnspec.grading import outputs

    data = json.loads(outputs.gradescope(records["buggy_no_mask"]))
    assert data["score"] == records["buggy_no_mask"]["score"]
    assert sum(t.get("max_score", 0) for t in data["tests"]) == FULL
    assert {t["status"] for t in data["tests"]} <= {"passed", "failed"}


# -- one shard graded through the CLI: what batch.json records, what merge makes of it ----------------
@pytest.fixture(scope="module")
def half(tmp_path_factory):
    """Shard 1/2 of [correct_mha, buggy_no_mask] (so correct_mha alone), graded once, shared by xdist workers."""
    shared = tmp_path_factory.getbasetemp().parent / "shard-1-of-2"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done.json").exists():
            # workers get uids UID_BASE + index: test_no_process_is_left_behind waits for this lock
            with open(tmp_path_factory.getbasetemp().parent / "grading-uids.lock", "w") as uids:
                fcntl.flock(uids, fcntl.LOCK_EX)
                proc = _grade(shared / "out", [HOSTILE / "correct_mha.py", HOSTILE / "buggy_no_mask.py"],
                              "--shard", "1/2")
            (shared / "done.json").write_text(json.dumps({"rc": proc.returncode, "stderr": proc.stderr[-5000:]}))
    done = json.loads((shared / "done.json").read_text())
    assert done["rc"] == 0, done["stderr"]
    return shared / "out"


def test_a_graded_shard_records_its_run_and_merges_only_with_its_siblings(half, tmp_path, capsys):
    from attnspec.grading import cli, outputs, rubric

    batch = outputs.read_batch(half)
    record = json.loads((half / "submissions" / "correct_mha.json").read_text())
    assert batch["finished"] and batch["submissions"] == ["correct_mha"]
    assert batch["shard"]["index"] == [1] and batch["shard"]["of"] == 2 and batch["shard"]["submissions"] == 2
    assert batch["rubric"] == record["rubric"] and batch["tool"] == record["tool"]
    assert batch["rubric"]["fingerprint"] == rubric.load(RUBRIC).fingerprint()
    assert "Shard 1/2 only: 2 submissions in all" in (half / "summary.md").read_text()
    again = tmp_path / "again"
    shutil.copytree(half, again)
    for argv, rc, said in [
        ([half], 2, "shard 2 of 2 is missing (got 1); merge every shard, or pass --allow-missing"),
        ([half, again], 2, f"shard 1/2 is given twice: in {half} and in {again}"),
        ([half, "--allow-missing"], 0, "warning: shard 2 of 2 is missing"),
    ]:
        assert cli.main(["merge", *map(str, argv), "--out", str(tmp_path / "all")]) == rc
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
    with open(tmp_path / "all" / "grades.csv") as fh:
        assert [r["submission"] for r in csv.DictReader(fh)] == ["correct_mha"]


# -- the documented cluster recipes (docs/grading.md, "Grading on a cluster"), run as the scheduler would ----
DOCS = Path(__file__).parents[1] / "docs" / "grading.md"
COURSE = ["ada", "ben", "cy", "dee", "eve"]  # five submissions over four shards: shard 1 gets two


def _snippets():
    """{name: text} of the fenced blocks that docs/grading.md marks with `<!-- snippet: NAME -->`."""
    text = DOCS.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- snippet: (\S+) -->\n```[\w-]*\n(.*?\n)```\n", text, re.S))


def _yaml(text):
    """The YAML that docs/grading.md's workflow and manifests use (PyYAML is no dependency of attnspec):
    block mappings and sequences, flow {...} and [...] of scalars, quoted and plain scalars, comments, `>-`."""
    lines = [(len(ln) - len(ln.lstrip()), ln.strip()) for ln in map(_uncomment, text.splitlines()) if ln.strip()]
    value, end = _yaml_block(lines, 0)
    assert end == len(lines), lines[end]
    return value


def _uncomment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _yaml_block(lines, i):
    indent, seq, out = lines[i][0], lines[i][1].startswith("- "), None
    out = [] if seq else {}
    while i < len(lines) and lines[i][0] == indent:
        text = lines[i][1]
        if seq:
            assert text.startswith("- "), text
            text = text[2:].strip()
            if re.match(r"[\w-]+:( |$)", text):  # a mapping in the sequence: its keys are at indent + 2
                lines[i] = (indent + 2, text)
                value, i = _yaml_block(lines, i)
            else:
                value, i = _yaml_value(lines, i, text)
            out.append(value)
        else:
            key, _, rest = text.partition(":")
            assert re.fullmatch(r"[\w.-]+", key) and (not rest or rest[0] == " "), text
            out[key], i = _yaml_value(lines, i, rest.strip())
    assert i == len(lines) or lines[i][0] < indent, lines[i]
    return out, i


def _yaml_value(lines, i, text):
    """The value that starts as `text` on line i (and may go on below it); (value, next line)."""
    below = i + 1 < len(lines) and lines[i + 1][0] > lines[i][0]
    if text in ("", ">-"):
        assert below, lines[i]
        if not text:
            return _yaml_block(lines, i + 1)
        end = i + 1
        while end < len(lines) and lines[end][0] > lines[i][0]:
            end += 1
        return " ".join(t for _, t in lines[i + 1:end]), end
    assert not below, lines[i + 1]
    if text[0] not in "{[\"'":  # a plain scalar: outside [...] and {...}, it may hold any of ,[]{}
        return _yaml_plain(text), i + 1
    value, rest = _yaml_flow(text)
    assert not rest.strip(), text
    return value, i + 1


def _yaml_flow(text):
    """(scalar, {...} or [...], text after it)."""
    text = text.lstrip()
    if text[0] in "{[":
        close, out = "}]"["{[".index(text[0])], {} if text[0] == "{" else []
        text = text[1:].lstrip()
        while text[0] != close:
            if isinstance(out, dict):
                key, _, text = text.partition(":")
                out[key.strip()], text = _yaml_flow(text)
            else:
                item, text = _yaml_flow(text)
                out.append(item)
            text = text.lstrip()
            text = text[1:].lstrip() if text[0] == "," else text
        return out, text[1:]
    if text[0] in "\"'":
        end = text.index(text[0], 1)
        return text[1:end], text[end + 1:]
    m = re.match(r"[^,{}\[\]]*", text)
    return _yaml_plain(m.group()), text[m.end():]


def _yaml_plain(text):
    text = text.strip()
    return {"true": True, "false": False}.get(text, int(text) if text.isdigit() else text)


def _course(root):
    """What the course keeps next to the scripts: submissions/ (no book class in them: no worker is
    forked) and rubric.toml."""
    for sid in COURSE:
        (root / "submissions" / sid).mkdir(parents=True)
        (root / "submissions" / sid / "notes.py").write_text("TODO = 'write the classes'\n")
    shutil.copy(RUBRIC, root / "rubric.toml")


# `attnspec` and the schedulers' commands only record how they were called (cwd, name, arguments);
# the test then runs each `attnspec` call here, through the real CLI
RECORDER = r"""#!/bin/sh
n=$(ls "$SHIM_CALLS" | wc -l)
printf '%s\0' "$PWD" "${0##*/}" "$@" > "$SHIM_CALLS/$(printf %04d "$n")"
if [ "${0##*/}" = sbatch ]; then echo "$((4242 + n));cluster"; fi
"""
SUDO = r"""#!/bin/sh
while [ "${1#-}" != "$1" ]; do shift; done
exec "$@"
"""


class _Cluster:
    def __init__(self, tmp, monkeypatch):
        from attnspec.grading import grade

        self.tmp, self.bin, self.runs = tmp, tmp / "bin", 0
        self.bin.mkdir()
        for name, text in [("attnspec", RECORDER), ("sbatch", RECORDER), ("kubectl", RECORDER), ("sudo", SUDO)]:
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.grades, self.merges = [], []  # (cwd, parsed arguments)

        class NoZygote:  # these submissions need no worker: skip the second a zygote takes to start
            def alive(self):
                return True

            def close(self):
                pass

        batch = grade.grade_batch
        monkeypatch.setattr(grade, "Zygote", NoZygote)
        monkeypatch.setattr(grade, "grade_batch", lambda *a, **k: batch(*a, **{**k, "jobs": 1}))  # no pool
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def shell(self, argv, cwd, env=None):
        """Run `argv` as the scheduler would; the recorded calls [(cwd, name, args)], in order."""
        calls = self.tmp / "calls" / str(self.runs)
        calls.mkdir(parents=True)
        self.runs += 1
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION", "GITHUB_"))}
        base.update(PATH=f"{self.bin}:{os.environ['PATH']}", SHIM_CALLS=str(calls), LC_ALL="C", **(env or {}))
        proc = subprocess.run(argv, cwd=cwd, env=base, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        out = []
        for path in sorted(calls.iterdir()):
            cwd_, name, *args = path.read_bytes().decode().split("\0")[:-1]
            out.append((cwd_, name, args))
        return out

    def attnspec(self, cwd, args):
        """Run one recorded `attnspec` call in this process; its exit status."""
        from attnspec.grading import cli

        parser = argparse.ArgumentParser(prog="attnspec")
        cli.add_arguments(parser.add_subparsers(dest="command", required=True))
        parsed = parser.parse_args(args)
        (self.grades if parsed.command == "grade" else self.merges).append((Path(cwd), parsed))
        here = os.getcwd()
        os.chdir(cwd)
        try:
            return parsed.func(parsed)
        finally:
            os.chdir(here)

    def check(self, n):
        """The N grade calls graded shards 1/N .. N/N, each submission exactly once; one merge has them all."""
        assert sorted(a.shard for _, a in self.grades) == [f"{i}/{n}" for i in range(1, n + 1)]
        graded = Counter()
        for cwd, a in self.grades:
            graded.update(p.stem for p in (cwd / a.out / "submissions").glob("*.json"))
        assert graded == Counter(COURSE)
        [(cwd, merge)] = self.merges
        merged = cwd / merge.out
        with open(merged / "grades.csv") as fh:
            assert [r["submission"] for r in csv.DictReader(fh)] == COURSE
        batch = json.loads((merged / "batch.json").read_text())
        assert batch["finished"] and batch["shard"] is None and batch["submissions"] == COURSE


def _sbatch(cwd, args):
    """(options, script) of an sbatch call: its own options, then the script's #SBATCH lines."""
    script = next(a for a in args if not a.startswith("--"))
    opts = {}
    for line in (Path(cwd) / script).read_text().splitlines()[1:]:
        if not line.startswith("#SBATCH "):
            break
        key, _, value = line.split(None, 1)[1].partition("=")
        opts[key] = value
    for arg in args[:args.index(script)]:
        key, _, value = arg.partition("=")
        opts[key] = value
    return opts, script


def _array(spec):
    """Task ids of --array=1-4, 1-8:2, 1,3,5 or 1-4%2."""
    ids = []
    for part in spec.split("%")[0].split(","):
        first, _, rest = part.partition("-")
        last, _, step = rest.partition(":")
        ids += range(int(first), int(last or first) + 1, int(step or 1))
    return ids


def test_the_documented_slurm_array_job_grades_each_submission_once(tmp_path, monkeypatch):
    snippets, root = _snippets(), tmp_path / "course"
    _course(root)
    for name in ("grade.sbatch", "merge.sbatch", "slurm-submit.sh"):
        (root / name).write_text(snippets[name])
    cluster, states, arrays = _Cluster(tmp_path, monkeypatch), {}, []
    for n, (cwd, name, args) in enumerate(cluster.shell(["sh", "slurm-submit.sh"], root)):
        assert name == "sbatch"
        opts, script = _sbatch(cwd, args)
        job = str(4242 + n)  # what the recorder answered
        if "--dependency" in opts:
            kind, _, after = opts["--dependency"].partition(":")
            assert kind == "afterok" and after and all(states[j] == "COMPLETED" for j in after.split(":"))
        assert (root / opts["--output"]).parent.is_dir()  # else Slurm cannot write the log
        tasks = _array(opts["--array"]) if "--array" in opts else [None]
        arrays += [tasks] if "--array" in opts else []
        states[job] = "COMPLETED"
        for task in tasks:
            env = {"SLURM_JOB_ID": job, "SLURM_SUBMIT_DIR": str(root)}
            if task is not None:
                env.update(SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(task))
            if "--cpus-per-task" in opts:
                env["SLURM_CPUS_PER_TASK"] = opts["--cpus-per-task"]
            for call_cwd, prog, call in cluster.shell(["bash", script], cwd, env):
                assert prog == "attnspec"
                if cluster.attnspec(call_cwd, call) != 0:
                    states[job] = "FAILED"
    assert list(states.values()) == ["COMPLETED", "COMPLETED"]
    [tasks] = arrays
    cluster.check(len(tasks))


def test_the_documented_kubernetes_indexed_job_grades_each_submission_once(tmp_path, monkeypatch):
    snippets, volume, admin = _snippets(), tmp_path / "volume", tmp_path / "admin"
    _course(volume)  # the ReadWriteMany volume every pod mounts
    admin.mkdir()
    for name in ("grade-job.yaml", "merge-job.yaml", "k8s-submit.sh"):
        (admin / name).write_text(snippets[name])
    cluster, jobs, completions = _Cluster(tmp_path, monkeypatch), {}, None
    for cwd, name, args in cluster.shell(["sh", "k8s-submit.sh"], admin):
        assert name == "kubectl"
        if args[0] == "apply":
            job = _yaml((Path(cwd) / args[args.index("-f") + 1]).read_text())
            assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
            spec, pod = job["spec"], job["spec"]["template"]["spec"]
            assert pod["restartPolicy"] == "Never"
            [container] = pod["containers"]
            claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get(container["workingDir"]) in claims  # it works in the shared volume
            indexed = spec.get("completionMode") == "Indexed"
            if indexed:
                completions = spec["completions"]
                assert spec.get("parallelism", 1) <= completions
            status = "Complete"
            for index in range(spec.get("completions", 1)):
                env = {e["name"]: e["value"] for e in container.get("env", [])}
                if indexed:
                    env["JOB_COMPLETION_INDEX"] = str(index)  # 0-based
                for call in cluster.shell(container.get("command", []) + container.get("args", []), volume, env):
                    assert call[1] == "attnspec"
                    status = status if cluster.attnspec(call[0], call[2]) == 0 else "Failed"
            jobs[job["metadata"]["name"]] = status
        else:
            assert args[0] == "wait" and "--for=condition=complete" in args
            assert jobs[next(a for a in args if a.startswith("job/"))[4:]] == "Complete"
    assert list(jobs.values()) == ["Complete", "Complete"]
    cluster.check(completions)


def test_the_documented_actions_matrix_grades_each_submission_once(tmp_path, monkeypatch):
    workflow = _yaml(_snippets()[".github/workflows/grade.yml"])
    grade_job, merge_job = workflow["jobs"]["grade"], workflow["jobs"]["merge"]
    assert grade_job["strategy"]["fail-fast"] is False and merge_job["needs"] == "grade"
    assert "!cancelled()" in merge_job["if"]  # the merge runs, and refuses, when a shard failed
    cluster, artifacts = _Cluster(tmp_path, monkeypatch), tmp_path / "artifacts"

    def expand(text, matrix):
        text = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(matrix[m.group(1)]), str(text))
        assert "${{" not in text, text
        return text

    def run_job(job, workspace, matrix):
        for step in job["steps"]:
            uses, given = step.get("uses", ""), {k: expand(v, matrix) for k, v in step.get("with", {}).items()}
            if uses.startswith("actions/upload-artifact@"):
                shutil.copytree(workspace / given["path"], artifacts / given["name"])  # the folder's contents
            elif uses.startswith("actions/download-artifact@"):  # v4: one folder per artifact
                for art in sorted(artifacts.iterdir()):
                    if fnmatch.fnmatch(art.name, given["pattern"]):
                        shutil.copytree(art, workspace / given.get("path", ".") / art.name)
            elif "run" in step and not step["run"].startswith("pip install"):
                argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step["run"], matrix)]
                for cwd, name, args in cluster.shell(argv, workspace):
                    assert name == "attnspec" and cluster.attnspec(cwd, args) == 0

    shards = grade_job["strategy"]["matrix"]["shard"]
    for shard in shards:
        workspace = tmp_path / f"runner-{shard}"  # each matrix job checks the course out afresh
        _course(workspace)
        run_job(grade_job, workspace, {"shard": shard})
    (tmp_path / "runner-merge").mkdir()
    run_job(merge_job, tmp_path / "runner-merge", {})
    cluster.check(len(shards))
