"""`attnspec grade` over the hostile zoo: one batch (run once per test session), many checks.

The batch holds correct, buggy and hostile submissions (tests/hostile/) plus a
folder submission; it is graded through the CLI in a subprocess with
absolute paths on its command line (which hostile code reads from /proc).
"""

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
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
