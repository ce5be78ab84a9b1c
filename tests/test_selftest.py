"""How `attnspec selftest` judges runs: kills, survivors, false failures and suite faults (no engine runs here)."""

import pathlib
import textwrap

from attnspec.selftest import EntryReport, SelfTestReport, read_entry, run_from_results

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _result(verdict, failed=(), errors=(), level="MUST", message="wrong"):
    clauses = [dict(id=c, status="failed", level=level, message=message) for c in failed]
    clauses += [dict(id=c, status="error", level="MUST", message="internal error in the suite (x): boom") for c in errors]
    clauses.append(dict(id="SHAPE-1", status="passed", level="MUST", message=""))
    return dict(verdict=verdict, clauses=clauses, reach={"num_heads > 1": 3})


def _mutant(tmp_path, clauses=("SCALE-1",)):
    f = tmp_path / "m99_demo.py"
    f.write_text(textwrap.dedent(f'''\
        """Demo bug; a one-head test hides it."""
        import torch.nn as nn
        CLAUSES = {list(clauses)!r}
        class MultiHeadAttention(nn.Module):
            pass
        '''))
    return read_entry(str(f), "mutant")


def test_entry_names_its_target_and_clauses(tmp_path):
    e = _mutant(tmp_path, ("SCALE-1", "NUM-1"))
    assert e.target.endswith("m99_demo.py:MultiHeadAttention")
    assert e.clauses == ["SCALE-1", "NUM-1"] and e.kind == "MultiHeadAttention"


def test_killed_only_by_a_tagged_clause_under_every_seed(tmp_path):
    e = _mutant(tmp_path)
    by_tag = run_from_results(0, [_result("does_not_conform", ["SCALE-1", "NUM-1"])])
    by_other = run_from_results(1, [_result("does_not_conform", ["NUM-1"])])
    assert EntryReport(e, [by_tag]).judge().outcome == "killed"
    report = EntryReport(e, [by_tag, by_other]).judge()
    assert report.outcome == "survived" and "seed 1" in report.reason
    assert report.kills_in == 1


def test_suite_crashes_and_should_failures_do_not_kill(tmp_path):
    e = _mutant(tmp_path)
    crashed = run_from_results(0, [_result("error", errors=["SCALE-1"])])
    should_only = run_from_results(0, [_result("conforms", ["SCALE-1"], level="SHOULD")])
    assert EntryReport(e, [crashed]).judge().outcome == "survived"
    assert EntryReport(e, [should_only]).judge().outcome == "survived"


def test_gallery_false_failure_and_rates(tmp_path):
    g = _mutant(tmp_path, ("X",))
    g.role = "gallery"
    good = EntryReport(g, [run_from_results(0, [_result("conforms")])]).judge()
    bad = EntryReport(g, [run_from_results(0, [_result("does_not_conform", ["CAUSAL-1"], message="leak")])]).judge()
    assert good.outcome == "accepted" and bad.outcome == "falsely_failed" and "CAUSAL-1: leak" in bad.reason
    m = EntryReport(_mutant(tmp_path), [run_from_results(0, [_result("does_not_conform", ["SCALE-1"])])]).judge()
    report = SelfTestReport(mutants=[m], gallery=[good, bad], seeds=(0,), profile="quick")
    assert report.kill_rate == 1.0 and report.false_failure_rate == 0.5 and not report.ok
    assert report.clause_kills()["SCALE-1"] == [1, 1]
    assert report.reach()["num_heads > 1"] == (9, 0)
    text, md = report.to_text(), report.to_markdown()
    assert "m99_demo" in text and "falsely_failed" in text and "| m99_demo |" in md


def _file(tmp_path, name, body):
    f = tmp_path / f"{name}.py"
    f.write_text(textwrap.dedent(body))
    return read_entry(str(f), "gallery")


def test_forked_checks_report_crashes_and_timeouts_without_stopping(tmp_path):
    from attnspec.selftest import Job, run_forked

    crash = _file(tmp_path, "g_exits", '''\
        """Calls os._exit in forward."""
        import os
        import torch.nn as nn
        class MultiHeadAttention(nn.Module):
            def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
                super().__init__()
            def forward(self, x):
                os._exit(3)
        ''')
    hang = _file(tmp_path, "g_hangs", '''\
        """Sleeps at import."""
        import time
        time.sleep(60)
        def simplified_self_attention(inputs):
            return inputs
        ''')
    good = read_entry(str(ROOT / "reference" / "simplified.py"), "gallery")
    jobs = [Job(crash, 0), Job(hang, 0), Job(good, 0, "ulps")]
    runs = {job.entry.name: run for job, run in zip(jobs, run_forked(jobs, profile="quick", jobs=2, timeout_s=8))}
    assert runs["g_exits"].status == "crashed" and "exit code 3" in runs["g_exits"].detail
    assert runs["g_hangs"].status == "timeout"
    assert runs["simplified"].accepted and runs["simplified"].emulation == "ulps"
