"""attnspec.memo keeps the suite's own numbers by the content of their inputs, never by identity,
and hands them out read-only; and the code under test never receives a view of the suite's arrays."""

import numpy as np
import pytest

from attnspec import memo, weights
from attnspec.adapter import Adapter
from attnspec.candidate import LocalCandidate
from attnspec.config import Config


@pytest.fixture
def counted():
    calls = []

    @memo.remembered
    def f(cfg, w, x, dtype, keep=None):
        calls.append(1)
        return x * 2.0 + sum(v.sum() for v in w.values())

    return f, calls


CFG = Config("CausalAttention", d_in=3, d_out=2, context_length=4)


def test_equal_contents_hit_and_different_contents_miss(counted):
    f, calls = counted
    x = np.arange(12.0).reshape(4, 3)
    w = {"W_query": np.ones((2, 3)), "W_key": np.zeros((2, 3))}
    first = f(CFG, w, x, "float32")
    again = f(CFG, {k: v.copy() for k, v in w.items()}, x.copy(), "float32")  # new arrays, same numbers
    assert again is first and len(calls) == 1
    x2 = x.copy()
    x2[3, 2] = np.nextafter(x2[3, 2], np.inf)  # one ulp in one element
    f(CFG, w, x2, "float32")
    f(CFG, w, x, "float64")
    f(CFG, w, x.astype(np.float32), "float32")  # the same values in another dtype
    f(CFG, w, x.reshape(3, 4), "float32")  # the same bytes in another shape
    f(CFG.with_(context_length=5), w, x, "float32")
    f(CFG, w, x, "float32", keep=np.ones((1, 1, 4, 4)))
    assert len(calls) == 7


def test_results_are_read_only(counted):
    f, _ = counted
    y = f(CFG, {}, np.zeros((2, 3)), "float32")
    with pytest.raises(ValueError):
        y += 1.0


def test_an_argument_it_cannot_key_is_refused(counted):
    f, _ = counted
    with pytest.raises(TypeError, match="cannot remember"):
        f(CFG, {}, [[0.0]], "float32")


def test_the_store_is_bounded(counted, monkeypatch):
    f, calls = counted
    monkeypatch.setattr(memo, "MAX_ENTRIES", 3)
    xs = [np.full((1, 1), float(i)) for i in range(4)]
    for x in xs:
        f(CFG, {}, x, "float32")
    assert f.cache_size() == 3
    f(CFG, {}, xs[0], "float32")  # the oldest was dropped: computed again
    assert len(calls) == 5


def test_the_oracle_is_remembered():
    cfg = Config("MultiHeadAttention", d_in=4, d_out=4, context_length=3, num_heads=2)
    w = weights.canonical_weights(cfg, np.random.default_rng(0), "float64")
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    first = weights.oracle_output(cfg, w, x)
    assert weights.oracle_output(cfg, w, x.copy()) is first
    assert not first.flags.writeable
    assert weights.oracle_output(cfg, w, x[:, :2]) is not first  # a prefix is another input


class _WritesIntoItsInput(Adapter):
    """A float64 module that scales its input in place and keeps the weight tensor it was given."""

    kind = "SelfAttention_v1"

    def build(self, cfg):
        return {"W": None}

    def load(self, module, tensors, cfg):
        module["W"] = tensors["W_query"]

    def forward(self, module, x):
        x.mul_(100.0)
        module["W"].zero_()
        return x[..., :1].clone()


def test_the_code_under_test_gets_copies_of_the_suites_arrays():
    candidate = LocalCandidate(_WritesIntoItsInput())
    cfg = Config("SelfAttention_v1", d_in=2, d_out=1)
    w = {"W_query": np.ones((1, 2)), "W_key": np.ones((1, 2)), "W_value": np.ones((1, 2))}
    x = np.ones((3, 2))
    handle = candidate.build(cfg, dtype="float64", weights=w)
    candidate.forward(handle, x)
    assert np.all(x == 1.0), "the module's in-place write reached the suite's input"
    assert np.all(w["W_query"] == 1.0), "the module's in-place write reached the suite's weights"
