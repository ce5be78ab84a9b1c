"""The pytest plugin: inert by default, clause IDs in test IDs and JUnit, usage errors not skips."""

import pathlib
import subprocess
import sys

import attnspec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pytest_run(tmp_path, *args):
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_inert_without_a_target(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    proc = pytest_run(tmp_path)
    assert proc.returncode == 0 and "1 passed" in proc.stdout and "attnspec 1.0.0 (spec" not in proc.stdout


def test_a_missing_target_is_a_usage_error(tmp_path):
    proc = pytest_run(tmp_path, "--attn-target", "nowhere.py:MultiHeadAttention")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "no such file" in proc.stderr


def test_properties_become_items_with_clause_ids_and_junit_properties(tmp_path):
    junit = tmp_path / "junit.xml"
    target = f"{ROOT}/tests/fixtures/no_mask.py:MultiHeadAttention"
    proc = pytest_run(tmp_path, "--attn-target", target, "--attn-profile", "quick", "--attn-seed", "0", f"--junitxml={junit}", "-k", "future_tokens or output_has")
    assert proc.returncode == 1, proc.stdout
    assert f"attnspec {attnspec.__version__} (spec {attnspec.SPEC_VERSION})" in proc.stdout and "--attn-seed=0" in proc.stdout
    assert "future_tokens_do_not_change_the_past[CAUSAL-1,NUM-4]" in proc.stdout
    assert "CAUSAL-1@1 [MUST]" in proc.stdout and "reproduce: attnspec check" in proc.stdout
    xml = junit.read_text()
    assert 'name="attnspec_clauses" value="CAUSAL-1 NUM-4"' in xml


def test_ini_option_selects_the_target(tmp_path):
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nattn_target = {ROOT}/reference/causal.py:CausalAttention\nattn_profile = quick\n")
    proc = pytest_run(tmp_path, "-k", "future_tokens or output_has")
    assert proc.returncode == 0, proc.stdout
    assert "2 passed" in proc.stdout
