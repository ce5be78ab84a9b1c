"""The attnspec command: exit codes, JSON, reports, replay, and errors without tracebacks."""

import json
import pathlib
import subprocess
import sys

import pytest

import attnspec

from attnspec.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
MHA = f"{ROOT}/reference/multihead.py:MultiHeadAttention"
NO_MASK = f"{ROOT}/tests/fixtures/no_mask.py:MultiHeadAttention"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "attnspec", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_spec_lists_and_prints_clauses(capsys):
    assert main(["spec", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "CAUSAL-1" in listing and "PARAM-5" in listing
    assert main(["spec", "scale-1"]) == 0
    out = capsys.readouterr().out
    assert "SCALE-1@1" in out and "Common mistake" in out and "Cite as: attnspec SCALE-1@1" in out


def test_unknown_clause_is_a_usage_error(capsys):
    assert main(["spec", "NOPE-9"]) == 2
    assert "attnspec spec --list" in capsys.readouterr().err


def test_reference_conforms_and_writes_the_canonical_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", MHA, "--profile", "quick", "--seed", "7", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 7" in text and "conforms" in text
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "conforms" and doc["seed"] == 7
    (result,) = doc["results"]
    assert result["schema"] == "attnspec-result/1"
    assert result["tool"]["spec_version"] == attnspec.SPEC_VERSION and "torch" in result["environment"]
    ids = {c["id"]: c for c in result["clauses"]}
    assert ids["CAUSAL-1"]["status"] == "passed" and ids["CAUSAL-1"]["examples"] > 0
    assert {"id", "status", "message", "counterexample"} <= set(ids["SCALE-1"])


def test_a_leaking_mask_fails_causal_1_with_a_shrunk_counterexample(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", NO_MASK, "--profile", "quick", "--seed", "0", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "✗ CAUSAL-1" in text and "see the future" in text and "reproduce: attnspec check" in text
    result = json.loads(out.read_text())["results"][0]
    causal = next(c for c in result["clauses"] if c["id"] == "CAUSAL-1")
    assert causal["status"] == "failed"
    case = causal["counterexample"]["case"]
    assert case["num_tokens"] == 2 and case["config"]["num_heads"] == 1, "hypothesis shrinks to the smallest leak"
    assert "--seed 0" in causal["reproduce"] and "--only CAUSAL-1" in causal["reproduce"]


def test_the_same_seed_gives_the_same_verdicts(tmp_path):
    docs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        main(["check", NO_MASK, "--profile", "quick", "--seed", "11", "--only", "CAUSAL-1,SCALE-1", "--json", str(path), "-q"])
        docs.append(json.loads(path.read_text())["results"][0]["clauses"])
    strip = lambda cs: [(c["id"], c["status"], c["message"], c["counterexample"]) for c in cs]  # noqa: E731
    assert strip(docs[0]) == strip(docs[1])


@pytest.mark.parametrize(
    "target, words",
    [
        ("tests/fixtures/nothing_here.py", "no such file"),
        ("tests/fixtures/broken_import.py", "refuses to load"),
        ("tests/fixtures/no_mask.py:Missing", "has no attribute 'Missing'"),
        ("tests/fixtures/no_mask.py:torch", "no book name"),
    ],
)
def test_targets_that_cannot_be_loaded_exit_2_without_a_traceback(target, words):
    proc = run("check", target, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_bad_options_are_usage_errors(tmp_path, capsys):
    assert main(["check", MHA, "--profile", "enormous"]) == 2
    assert main(["check", MHA, "--only", "CAUSAL-99"]) == 2
    assert main(["check", MHA, "--json", str(tmp_path / "missing" / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "quick, default, thorough" in err and "CAUSAL-99" in err and "does not exist" in err


def test_module_entry_point_and_exit_code_for_a_buggy_target():
    proc = run("check", NO_MASK, "--profile", "quick", "--seed", "0", "--only", "CAUSAL-1")
    assert proc.returncode == 1 and "CAUSAL-1" in proc.stdout
