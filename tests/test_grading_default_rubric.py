"""Under the shipped default rubric (every clause, default profile) a correct submission gets full marks."""

import csv
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_correct_submission_gets_full_marks_and_a_buggy_one_does_not(tmp_path):
    subs = [ROOT / "tests/hostile/correct_all.py", ROOT / "tests/hostile/buggy_no_scale.py"]
    proc = subprocess.run([sys.executable, "-m", "attnspec", "grade", *map(str, subs), "--out", str(tmp_path / "out"), "--jobs", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv"))}
    correct, buggy = rows["correct_all"], rows["buggy_no_scale"]
    assert correct["status"] == "completed" and float(correct["score"]) == float(correct["max_score"]) > 150
    assert float(buggy["score"]) < float(buggy["max_score"])
    feedback = (tmp_path / "out" / "feedback" / "buggy_no_scale.md").read_text()
    assert "SCALE-1" in feedback
