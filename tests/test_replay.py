"""Replaying a kept passing run (attnspec.replay) changes the cost of a check, never its result.

Each target is checked twice: cold (nothing kept, every property under
hypothesis) and warm (after a correct implementation of the same kind has
been checked, so every property that passed there is replayed first).  The
two results must be the same, clause by clause: statuses, messages, the
shrunk counterexamples, example counts and reach.  The targets include
mutants that fail on the first example and on later ones, one whose state
carries over between calls, a crashing one, adapters with other
declarations, and correct code in other styles.
"""

import os
import pickle

import pytest

import attnspec
from attnspec import engine, replay
from attnspec.strategies import Case

ROOT = os.path.join(os.path.dirname(__file__), "..")
ZOO = os.path.join(ROOT, "tests", "zoo")
GALLERY = os.path.join(ROOT, "tests", "gallery")
REFERENCE = {
    "simplified_self_attention": "reference/simplified.py:simplified_self_attention",
    "SelfAttention_v1": "reference/self_attention.py:SelfAttention_v1",
    "CausalAttention": "reference/causal.py:CausalAttention",
    "MultiHeadAttentionWrapper": "reference/multihead.py:MultiHeadAttentionWrapper",
    "MultiHeadAttention": "reference/multihead.py:MultiHeadAttention",
}
TARGETS = [
    ("MultiHeadAttention", f"{ZOO}/m16_mask_diagonal_0.py"),
    ("MultiHeadAttention", f"{ZOO}/m28_split_view_no_transpose.py"),
    ("MultiHeadAttention", f"{ZOO}/m51_dropout_on_output.py"),
    ("MultiHeadAttention", f"{ZOO}/m55_dropout_never_applied.py"),
    ("MultiHeadAttention", f"{ZOO}/m61_new_weights_each_call.py"),
    ("MultiHeadAttention", f"{ZOO}/m62_stale_kv_cache.py"),
    ("MultiHeadAttention", f"{ZOO}/m67_no_divisibility_check.py"),
    ("MultiHeadAttention", f"{GALLERY}/g04_fused_qkv.py"),
    ("MultiHeadAttention", f"{GALLERY}/g14_torch_multihead_attention.py"),
    ("CausalAttention", f"{ZOO}/m71_mask_renormalised_underflow.py"),
    ("CausalAttention", f"{ZOO}/m54_dropout_no_rescale.py"),
    ("MultiHeadAttentionWrapper", f"{ZOO}/m45_wrapper_shared_head.py"),
    ("SelfAttention_v1", f"{ZOO}/m09_v1_no_scaling.py"),
    ("simplified_self_attention", f"{ZOO}/m12_simplified_softmax_dim0.py"),
    ("CausalAttention", os.path.join(ROOT, "tests", "fixtures", "no_mask.py")),
]


def _comparable(results):
    """The result dicts without what may differ between two runs of the same check: timings and machine."""
    out = []
    for r in results:
        d = r.to_dict()
        d.pop("duration_s", None)
        d.pop("environment", None)
        for c in d["clauses"]:
            c.pop("duration_s", None)
        out.append(d)
    return out


@pytest.fixture
def replays():
    """Replay on and empty for the test; the process's own state restored afterwards."""
    kept = replay.export()
    before = replay.set_enabled(True)
    replay.clear()
    yield
    replay.clear()
    replay.absorb(kept)
    replay.set_enabled(before)


def _cold(target):
    replay.clear()
    before = replay.set_enabled(False)
    try:
        return attnspec.check(target, seed=0)
    finally:
        replay.set_enabled(before)


def _hypothesis_runs(monkeypatch):
    """The replay keys of the properties that run under hypothesis from now on (not replayed)."""
    keys = []
    real = engine._run_hypothesis
    monkeypatch.setattr(engine, "_run_hypothesis", lambda p, *args: keys.append(args[-1]) or real(p, *args))
    return keys


@pytest.mark.parametrize(("kind", "target"), TARGETS, ids=[os.path.basename(t) for _, t in TARGETS])
def test_a_warm_check_gives_the_cold_result(replays, monkeypatch, kind, target):
    cold = _comparable(_cold(target))
    attnspec.check(REFERENCE[kind], seed=0)  # keeps the draws of every property that passes there
    kept = {k for k, _ in replay.export()}
    assert kept, "the reference's passing properties were not kept"
    ran = _hypothesis_runs(monkeypatch)
    warm = _comparable(attnspec.check(target, seed=0))
    assert warm == cold
    if all(r["verdict"] == "conforms" for r in cold):  # nothing fails, so nothing kept may run again
        assert not kept & set(ran), f"kept properties ran under hypothesis: {sorted(k[1] for k in kept & set(ran))}"


def test_a_correct_target_checked_again_runs_no_property_under_hypothesis_twice(replays, monkeypatch):
    target = REFERENCE["MultiHeadAttention"]
    first = attnspec.check(target, seed=0)
    kept = {k for k, _ in replay.export()}
    assert len(kept) >= 25, f"only {len(kept)} of MultiHeadAttention's properties were kept"
    ran = _hypothesis_runs(monkeypatch)
    second = attnspec.check(target, seed=0)
    assert _comparable(second) == _comparable(first)
    assert not kept & set(ran), f"kept properties ran under hypothesis again: {sorted(k[1] for k in kept & set(ran))}"


def test_a_bug_seen_before_is_replayed_to_the_same_shrunk_counterexample(replays, monkeypatch, tmp_path):
    """A second copy of a mutant (another file, same bug) follows the first's failing runs, shrinking included."""
    original = os.path.join(ZOO, "m16_mask_diagonal_0.py")
    copy = tmp_path / "student_copy.py"
    copy.write_text(open(original, encoding="utf-8").read().replace('"""', '"""A copy. ', 1))
    cold = _comparable(_cold(str(copy)))
    attnspec.check(original, seed=0)
    failed = [k for k, r in replay.export() if r.failed]
    assert failed, "the mutant's failing runs were not kept"
    ran = _hypothesis_runs(monkeypatch)
    warm = _comparable(attnspec.check(str(copy), seed=0))
    for result in cold + warm:
        result["target"] = result["target"].rpartition(":")[2]
        for c in result["clauses"]:
            c["reproduce"] = c["reproduce"].split(" ", 3)[-1] if c["reproduce"] else ""
    assert warm == cold
    assert not set(failed) & set(ran), f"failing runs were not replayed: {sorted(k[1] for k in set(failed) & set(ran))}"


def test_a_replay_follows_only_the_recordings_that_ended_as_the_target_did():
    a = replay.Recording(((("d1",), None), (("d2",), None)))
    b = replay.Recording(((("d1",), ("ValueError",)), (("d3",), None)))
    stopped = replay.Recording(((("d1",), replay.STOPPED), (("d4",), None)))
    walk = replay.Replay([a, b, stopped])
    assert walk.next_draws() == (("d1",), True)  # one recording stopped inside a draw here
    walk.ended(("ValueError",))  # the target failed where b's did: only b stays
    assert walk.next_draws() == (("d3",), False)
    walk.ended(None)
    assert walk.next_draws() is None
    with pytest.raises(replay.Diverged):
        replay.Replay([a]).ended(("KeyError",))  # an ending no recording has
    with pytest.raises(replay.Diverged):
        replay.Replay([a, replay.Recording(((("other",), None),))]).next_draws()  # recordings that disagree


def test_an_exceptions_signature_is_its_type_and_where_it_was_raised():
    def fail(kind):
        try:
            raise kind("x")
        except Exception as exc:  # noqa: BLE001
            return exc

    first, second = fail(ValueError), fail(ValueError)
    assert replay.signature(first) == replay.signature(second)  # the same line, another message
    assert replay.signature(first) != replay.signature(fail(KeyError))
    try:
        raise ValueError("y")
    except ValueError as exc:
        elsewhere = exc
    assert replay.signature(first) != replay.signature(elsewhere)


def test_another_seed_or_profile_or_declaration_is_another_key(replays):
    p = next(q for q in engine.properties_for("CausalAttention") if q.name == "future_tokens_do_not_change_the_past")
    info = {"name": "a", "signature": "(self)", "square_only": False}
    base = replay.key(p, "CausalAttention", "default", 0, 25, info)
    assert replay.key(p, "CausalAttention", "default", 0, 25, {**info, "name": "b", "signature": None}) == base
    for other in (
        replay.key(p, "CausalAttention", "default", 1, 25, info),
        replay.key(p, "CausalAttention", "quick", 0, 6, info),
        replay.key(p, "CausalAttention", "default", 0, 25, {**info, "square_only": True}),
        replay.key(p, "MultiHeadAttention", "default", 0, 25, info),
    ):
        assert other != base


class _Data:
    def __init__(self, values):
        self.values = list(values)

    def draw(self, strategy, label=None):
        return self.values.pop(0)


def test_a_replay_answers_only_the_draws_it_recorded():
    from hypothesis import strategies as st

    recorder = replay.Recorder(_Data([3, "transposed"]))
    assert recorder.draw(st.integers(0, 5), label="t") == 3
    assert recorder.draw(st.sampled_from(["transposed", "strided"]), label="layout") == "transposed"
    assert recorder.shareable

    same = replay.Replayer(tuple(recorder.draws))
    assert same.draw(st.integers(0, 5), label="t") == 3
    assert not same.finished
    assert same.draw(st.sampled_from(["transposed", "strided"]), label="layout") == "transposed"
    assert same.finished
    with pytest.raises(replay.Diverged):
        same.draw(st.integers(0, 5), label="t")  # one draw more than the recording holds
    stops = replay.Replayer(tuple(recorder.draws), stops=True)  # hypothesis stopped the recorded example here
    stops.draw(st.integers(0, 5), label="t")
    stops.draw(st.sampled_from(["transposed", "strided"]), label="layout")
    with pytest.raises(replay.Stopped):
        stops.draw(st.integers(0, 5), label="t")
    assert stops.stopped and stops.finished

    with pytest.raises(replay.Diverged):
        replay.Replayer(tuple(recorder.draws)).draw(st.integers(0, 5), label="k")  # another label
    with pytest.raises(replay.Diverged):
        replay.Replayer(tuple(recorder.draws)).draw(st.integers(0, 6), label="t")  # another strategy

    mutable = replay.Recorder(_Data([[1, 2]]))
    mutable.draw(st.lists(st.integers()), label="xs")
    assert not mutable.shareable, "a mutable drawn value must not be shared between runs"


def test_a_diverging_replay_is_not_caught_by_a_property():
    assert not issubclass(replay.Diverged, Exception)


def test_recordings_travel_between_processes(replays):
    attnspec.check(REFERENCE["SelfAttention_v1"], seed=0)
    items = replay.export()
    assert items
    back = pickle.loads(pickle.dumps(items))
    replay.clear()
    replay.absorb(back)
    assert replay.export() == items
    assert any(isinstance(v, Case) for _, rec in items for draws, _ in rec.examples for _, _, v in draws)


def test_nothing_is_kept_or_replayed_when_turned_off(replays):
    replay.set_enabled(False)
    attnspec.check(REFERENCE["SelfAttention_v1"], seed=0)
    assert replay.export() == []


def test_the_store_is_bounded(replays, monkeypatch):
    monkeypatch.setattr(replay, "MAX_RECORDINGS", 3)
    for i in range(5):
        replay.keep(("k", i), replay.Recording(()))
    assert [k for k, _ in replay.export()] == [("k", 2), ("k", 3), ("k", 4)]
    assert replay.lookup(("k", 2)) is not None
    replay.keep(("k", 5), replay.Recording(()))
    assert [k for k, _ in replay.export()] == [("k", 4), ("k", 2), ("k", 5)]


def test_the_self_test_hands_kept_runs_to_the_children_it_forks_later(replays):
    """attnspec.selftest: each forked child sends back what it kept; the next child replays it, same Run."""
    from dataclasses import asdict

    from attnspec.selftest import Job, check_in_process, read_entry, run_forked

    correct = read_entry(os.path.join(GALLERY, "g04_fused_qkv.py"), "gallery")
    mutant = read_entry(os.path.join(ZOO, "m28_split_view_no_transpose.py"), "mutant")
    reference = read_entry(os.path.join(ROOT, "reference", "multihead.py"), "gallery")
    reference.target = REFERENCE["MultiHeadAttention"]
    jobs = [Job(reference, 0), Job(correct, 0), Job(mutant, 0), Job(correct, 0, "reversed")]
    runs = run_forked(jobs, jobs=1)
    assert {k[0] for k, _ in replay.export()} == {"MultiHeadAttention"}, "the parent did not take in what its children kept"
    replay.clear()
    before = replay.set_enabled(False)
    try:
        cold = [check_in_process(j.entry, j.seed, emulation=j.emulation) for j in jobs]
    finally:
        replay.set_enabled(before)
    strip = lambda run: {k: v for k, v in asdict(run).items() if k != "duration_s"}  # noqa: E731
    assert [strip(r) for r in runs] == [strip(r) for r in cold]


def test_a_key_keeps_its_passing_run_however_many_failures_follow(replays, monkeypatch):
    monkeypatch.setattr(replay, "MAX_VARIANTS", 3)
    passing = replay.Recording(((("d",), None),))
    failures = [replay.Recording(((("d",), ("E", i)),)) for i in range(5)]
    replay.keep("k", passing)
    for f in failures:
        replay.keep("k", f)
    assert replay.lookup("k") == [passing, failures[3], failures[4]]
