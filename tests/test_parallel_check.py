"""Properties spread over forked workers (attnspec.pool) give exactly the verdicts of one process."""

import json
import os
import threading

import pytest

from attnspec import engine, pool
from attnspec.candidate import LocalCandidate
from attnspec.cli import main
from attnspec.targets import load_target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = [
    f"{ROOT}/reference/multihead.py:MultiHeadAttention",
    f"{ROOT}/tests/zoo/m33_out_proj_no_bias.py",  # fails a gate: dependants not_checked
    f"{ROOT}/tests/zoo/m20_mask_not_sliced.py",  # fails with shrunk counterexamples
    f"{ROOT}/tests/zoo/m23_mask_added_0_1.py",
]


def _comparable(result):
    """A Result as data, without what may differ between runs: timings and the environment."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("duration_s", "environment")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(result.to_dict())


def _items():
    return [(LocalCandidate(adapter), label, adapter.kind) for target in TARGETS for label, adapter in load_target(target)]


@pytest.mark.skipif(pool.usable_jobs(2) == 1, reason="forking is not safe in this process (threads running)")
def test_two_workers_give_the_results_of_one_process():
    one = engine.check_candidates(_items(), profile="quick", seed=3, jobs=1, influence=False)
    two = engine.check_candidates(_items(), profile="quick", seed=3, jobs=2, influence=False)
    assert [r.verdict for r in one] == ["conforms", "does_not_conform", "does_not_conform", "does_not_conform"]
    assert [_comparable(r) for r in two] == [_comparable(r) for r in one]
    gate_failed = {c.id: c.status for c in one[1].clauses}
    assert "not_checked" in gate_failed.values(), "the gate's dependants must be not_checked, with or without workers"


DIES_IN_A_WORKER = '''
import os
import torch
import torch.nn as nn

PARENT = int(os.environ["ATTNSPEC_TEST_PARENT"])


class SelfAttention_v2(nn.Module):
    """The book's class, except that its forward ends any process but the one that imported it."""

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        if os.getpid() != PARENT:
            os._exit(7)
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)
        attn_weights = torch.softmax(queries @ keys.T / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values
'''


@pytest.mark.skipif(pool.usable_jobs(2) == 1, reason="forking is not safe in this process (threads running)")
def test_a_worker_that_dies_leaves_the_check_to_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNSPEC_TEST_PARENT", str(os.getpid()))
    path = tmp_path / "dies.py"
    path.write_text(DIES_IN_A_WORKER)
    items = [(LocalCandidate(adapter), label, adapter.kind) for label, adapter in load_target(str(path))]
    (result,) = engine.check_candidates(items, profile="quick", seed=0, jobs=2, influence=False)
    assert result.verdict == "conforms", [(c.id, c.status, c.message) for c in result.clauses if c.status != "passed"]


def test_no_workers_are_forked_while_other_threads_run():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert pool.usable_jobs(4) == 1 and pool.usable_jobs("auto") == 1
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("value, words", [("0", "--jobs must be at least 1"), ("two", "--jobs takes a whole number or 'auto'")])
def test_bad_jobs_is_a_usage_error(value, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", TARGETS[0], "--jobs", value])
    assert exit_info.value.code == 2 and words in capsys.readouterr().err


def test_the_command_gives_the_same_json_with_any_jobs(tmp_path):
    docs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.json"
        assert main(["check", TARGETS[2], "--profile", "quick", "--seed", "5", "--quiet", "--jobs", jobs, "--json", str(out)]) == 1
        doc = json.loads(out.read_text())
        docs.append([{k: v for k, v in r.items() if k not in ("duration_s", "environment")} for r in doc["results"]])
    for r in docs[0] + docs[1]:
        for c in r["clauses"]:
            c.pop("duration_s", None)
    assert docs[0] == docs[1]
