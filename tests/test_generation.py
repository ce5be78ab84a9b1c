"""A seed alone decides the examples: importing other modules (the code under test, an editable
install, a notebook) must not change what a property tries (attnspec.generation)."""

import importlib.util
import sys

from attnspec import engine, generation, replay
from attnspec.candidate import LocalCandidate
from attnspec.adapter import BookAdapter
from attnspec.reference import CausalAttention

# literals a student's file is full of (GPT-2's sizes, ...): hypothesis keeps those outside -100..100,
# and the input seeds (0..2**16) admit them
CONSTANTS = "\n".join(f"C{i} = {n}" for i, n in enumerate(range(101, 2**16, 499))) + "\nGPT2 = (768, 1024, 50257)\n"


def _drawn(prop_name="future_tokens_do_not_change_the_past", kind="CausalAttention"):
    """The draws of every example of one property run, cold (nothing replayed)."""
    prop = next(p for p in engine.properties_for(kind) if p.name == prop_name)
    candidate = LocalCandidate(BookAdapter(CausalAttention, kind))
    before = replay.set_enabled(True)
    replay.clear()
    try:
        outcome = engine.run_property(prop, candidate, dict(candidate.info), kind, "thorough", seed=0)
        assert outcome.status == "passed", outcome.message
        return [[(label, value) for label, _, value in draws] for draws, _ in replay.export()[0][1].examples]
    finally:
        replay.clear()
        replay.set_enabled(before)


def test_importing_a_module_full_of_constants_changes_no_example(tmp_path):
    before = _drawn()
    path = tmp_path / "student_constants.py"  # a local module: no 'tests' folder, no 'test_' prefix
    path.write_text(CONSTANTS)
    spec = importlib.util.spec_from_file_location("student_constants", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["student_constants"] = module
    try:
        spec.loader.exec_module(module)
        after = _drawn()
    finally:
        del sys.modules["student_constants"]
    assert after == before


def test_the_neutralisation_is_in_force_in_this_hypothesis():
    """Either this hypothesis has no local constants, or both hooks exist and are swapped within the block."""
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants"):
        return  # nothing to neutralise in this version
    assert generation._ACTIVE, "hypothesis renamed the hooks attnspec.generation swaps; update it"
    outside = providers._get_local_constants, providers.CONSTANTS_CACHE
    with generation.seed_only():
        assert providers._get_local_constants() is generation._no_constants
        assert providers.CONSTANTS_CACHE is generation._own_cache
    assert (providers._get_local_constants, providers.CONSTANTS_CACHE) == outside

