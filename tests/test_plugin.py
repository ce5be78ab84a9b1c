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
    assert proc.returncode == 0 and "1 passed" in proc.stdout and f"attnspec {attnspec.__version__} (spec" not in proc.stdout


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


def test_declared_clauses_skip_with_the_reason_and_a_wrong_adapter_is_a_usage_error(tmp_path):
    target = f"{ROOT}/tests/fixtures/no_mask.py:MultiHeadAttention"
    proc = pytest_run(tmp_path, "--attn-target", target, "--attn-profile", "quick", "--attn-seed", "0",
                      "--attn-skip", "CAUSAL-1,NUM-4", "-k", "future_tokens", "-rs")
    assert proc.returncode == 0, proc.stdout
    assert "not applicable: declared by the user (skip CAUSAL-1)" in proc.stdout
    (tmp_path / "glue.py").write_text(
        "import attnspec\nfrom attnspec.reference import MultiHeadAttention as _Book\n\n"
        "class WrongCall(attnspec.Adapter):\n"
        "    def build(self, cfg):\n"
        "        return _Book(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads)\n"
        "    def load(self, module, w, cfg):\n"
        "        attnspec.BookAdapter(_Book, 'MultiHeadAttention').load(module, w, cfg)\n"
        "    def forward(self, module, x):\n"
        "        return module(x, x)\n")
    proc = pytest_run(tmp_path, "--attn-target", str(tmp_path / "glue.py"))
    assert proc.returncode == 4 and "the adapter's forward is wrong" in proc.stderr, proc.stdout + proc.stderr
