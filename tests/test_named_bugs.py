"""The four bugs issue 3 names are rejected for the right clause, with a shrunk counterexample.

Also: every reference class conforms when checked by file, as a user would.
"""

import pathlib

import pytest

from attnspec import check

ROOT = pathlib.Path(__file__).resolve().parent.parent

BUGS = [
    ("tests/fixtures/no_mask.py:MultiHeadAttention", "CAUSAL-1"),
    ("tests/zoo/m01_scale_sqrt_d_out.py:MultiHeadAttention", "SCALE-1"),
    ("tests/zoo/m28_split_view_no_transpose.py:MultiHeadAttention", "HEAD-5"),
    ("tests/zoo/m51_dropout_on_output.py:MultiHeadAttention", "DROP-1"),
]


@pytest.mark.parametrize("target, clause", BUGS, ids=[c for _, c in BUGS])
def test_named_bug_is_rejected_with_a_small_counterexample(target, clause):
    (result,) = check(str(ROOT / target), seed=0, profile="default", only=[clause])
    assert result.verdict == "does_not_conform"
    verdict = result.clause(clause)
    assert verdict.status == "failed", verdict.message
    assert verdict.message and verdict.reproduce.endswith(f"--only {clause}")
    case = verdict.counterexample["case"]
    sizes = [case["batch"], case["num_tokens"], case["config"]["d_in"], case["config"]["d_out"], case["config"]["num_heads"]]
    assert max(sizes) <= 4, f"hypothesis should shrink {clause}'s counterexample, got {case}"


@pytest.mark.parametrize("target", ["reference/simplified.py", "reference/self_attention.py", "reference/causal.py", "reference/multihead.py"])
def test_every_reference_class_conforms(target):
    results = check(str(ROOT / target), seed=3, profile="quick")
    assert results and all(r.verdict == "conforms" for r in results), [(r.target, [c.id for c in r.failed]) for r in results]
