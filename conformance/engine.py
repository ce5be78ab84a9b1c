"""Run the properties for one target and fold their outcomes into a `Result`.

Each property becomes a hypothesis test over `st.data()`, seeded with the
run's seed (printed in every report, accepted back with --seed), with no
deadline and no example database, so a run is reproducible.  Hypothesis
shrinks a failure to its smallest example; the engine keeps the case that
example drew, the clause IDs the violation names, and its plain message.

The engine talks to the implementation only through a `Candidate`; the same
code serves `attnspec check`, the pytest plugin, the self-test and grading.
"""

import contextlib
import random
import time
import traceback
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException

from . import clauses as spec
from .assertions import ClauseViolation
from .candidate import CandidateError, LocalCandidate
from .config import CAUSAL_KINDS, Config
from .context import Context, NotApplicable, runs_at_full_length
from .declarations import declared_skips
from .properties import properties_for
from .results import ClauseResult, Result, environment, verdict_of

PROFILES = {"quick": 6, "default": 25, "thorough": 200}


def register_profiles():
    """Hypothesis profiles attnspec-quick/default/thorough: no deadline, no database, quiet."""
    for name, examples in PROFILES.items():
        settings.register_profile(
            f"attnspec-{name}",
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            verbosity=Verbosity.quiet,
            print_blob=False,
        )


register_profiles()


def default_seed(deterministic):
    """0 in CI and grading (derandomised), a fresh random seed otherwise; always printed."""
    return 0 if deterministic else random.randrange(2**32)


@dataclass
class Outcome:
    """What one property concluded about one target."""

    prop: object
    status: str  # passed | failed | error | skipped | not_checked
    clauses: tuple = ()  # the clauses a failure is attributed to
    message: str = ""
    expected: str = ""
    observed: str = ""
    counterexample: dict = None
    examples: int = 0
    reached: dict = field(default_factory=dict)
    duration_s: float = 0.0
    crash: str = ""  # the exception type, when the implementation raised


def _first_violation(exc):
    """The ClauseViolation or CandidateError inside a (Flaky) exception group, if any."""
    if isinstance(exc, (ClauseViolation, CandidateError)):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _first_violation(inner)
        if found is not None:
            return found
    return None


def _crash_clauses(p, candidate, notes, error):
    """The clause a crash violates: CAUSAL-5 when the same module works at full length."""
    case = (notes or {}).get("case")
    if error.reason != "raised" or not isinstance(case, dict):
        return p.clauses[:1]
    cfg_d = case["config"]
    if case["num_tokens"] >= cfg_d["context_length"] or cfg_d["kind"] not in CAUSAL_KINDS:
        return p.clauses[:1]
    if runs_at_full_length(candidate, Config(**cfg_d), case["batch"], case["dtype"]):
        return ("CAUSAL-5",)
    return p.clauses[:1]


def run_property(p, candidate, info, kind, profile="default", seed=0):
    """Run one property as a seeded hypothesis test; return its Outcome."""
    state = {"notes": None, "calls": 0, "skipped": 0, "skip_reason": "", "reached": {}}

    @settings(settings.get_profile(f"attnspec-{profile}"), max_examples=max(1, round(PROFILES[profile] * p.examples)))
    @hypothesis_seed(seed)
    @given(data=st.data())
    def test(data):
        ctx = Context(candidate, info, data, kind, profile)
        state["calls"] += 1
        try:
            p.fn(ctx)
        except NotApplicable as why:
            state["skipped"] += 1
            state["skip_reason"] = str(why)
        finally:
            state["notes"] = ctx.notes
            for cond in ctx.reached:
                state["reached"][cond] = state["reached"].get(cond, 0) + 1
            ctx.release_all()

    start = time.perf_counter()
    outcome = Outcome(p, "passed")
    try:
        test()
        if state["calls"] and state["skipped"] == state["calls"]:
            outcome = Outcome(p, "skipped", message=state["skip_reason"])
    except (ClauseViolation, CandidateError, Flaky) as exc:
        found = _first_violation(exc)
        flaky = isinstance(exc, Flaky)
        if isinstance(found, ClauseViolation):
            outcome = Outcome(p, "failed", found.clauses, found.message, found.expected, found.observed)
            outcome.crash = getattr(found, "crash", "")
        elif isinstance(found, CandidateError) and found.reason == "not_run":
            outcome = Outcome(p, "not_checked", message=f"not checked: {found.message}")
        elif isinstance(found, CandidateError) and found.reason == "mapping":
            outcome = Outcome(p, "not_checked", message=f"not checked: the canonical weights cannot be transferred (IFACE-8): {found.message}")
        elif isinstance(found, CandidateError):
            outcome = Outcome(p, "failed", _crash_clauses(p, candidate, state["notes"], found), found.plain())
            outcome.crash = found.exc_type
        else:
            outcome = Outcome(p, "failed", p.clauses[:1], "the implementation behaves differently on the same input")
        if flaky:
            outcome.message += " (the failure did not reproduce on replay: the implementation is not deterministic)"
        outcome.counterexample = state["notes"]
    except HypothesisException as exc:
        outcome = Outcome(p, "error", p.clauses[:1], f"the suite could not run this property: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug in the suite itself: say so, never blame the target
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        outcome = Outcome(p, "error", p.clauses[:1], f"internal error in the suite ({p.name}): {tail}")
    outcome.examples = state["calls"]
    outcome.reached = state["reached"]
    outcome.duration_s = time.perf_counter() - start
    return outcome


def _one_report_per_crash(outcomes):
    """A module that raises on some input shapes is reported once, under the shape clause.

    Every other property that then fails only because the same call raises the
    same exception is not_checked, not a pile of unrelated-looking failures.
    """
    shown = {o.crash: o for o in outcomes if o.crash and o.prop.name == "output_has_the_specified_shape"}
    result = []
    for o in outcomes:
        first = shown.get(o.crash) if o.crash else None
        if first is not None and o is not first and o.status == "failed":
            o = Outcome(o.prop, "not_checked", message=f"not judged: the implementation raises {o.crash} here too; see {', '.join(first.clauses)}", examples=o.examples, reached=o.reached, duration_s=o.duration_s)
        result.append(o)
    return result


def _reproduce(target, profile, seed, clause_id):
    return f"attnspec check {target} --profile {profile} --seed {seed} --only {clause_id}"


def fold(outcomes, kind, target, profile, seed):
    """Per-clause verdicts from per-property outcomes."""
    votes = {}
    for o in outcomes:
        judged = o.clauses if o.status in ("failed", "error") else o.prop.clauses
        for cid in judged:
            votes.setdefault(cid, []).append(o)
        if o.status in ("failed", "error"):
            for cid in o.prop.clauses:
                if cid not in o.clauses:
                    votes.setdefault(cid, []).append(Outcome(o.prop, "not_checked", message=f"not judged: {o.prop.name} failed on {', '.join(o.clauses)}", examples=o.examples))
    results = []
    for clause in spec.all_clauses():
        mine = votes.get(clause.id, [])
        cr = ClauseResult(id=clause.id, status="skipped", level=clause.level, title=clause.title)
        if not mine:
            cr.message = f"not applicable to {kind}"
            results.append(cr)
            continue
        cr.properties = sorted({o.prop.name for o in mine})
        cr.examples = sum(o.examples for o in mine if o.status != "not_checked")
        cr.duration_s = round(sum(o.duration_s for o in mine), 4)
        for status in ("failed", "error", "passed", "not_checked", "skipped"):
            chosen = [o for o in mine if o.status == status]
            if chosen:
                first = chosen[0]
                cr.status = status
                cr.message = first.message
                cr.expected, cr.observed = first.expected, first.observed
                cr.counterexample = first.counterexample
                if status in ("failed", "error"):
                    cr.reproduce = _reproduce(target, profile, seed, clause.id)
                break
        results.append(cr)
    return results


@contextlib.contextmanager
def torch_threads(n=1):
    """One thread by default: the modules under test are tiny, and torch's pool only adds waiting
    (5x on a busy machine).  The self-test also runs with 2, as another machine would."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_candidate(candidate, *, target, kind, profile="default", seed=0, only=None, threads=1, influence=True, skip=()):
    """Every property for `kind` against `candidate`; gates first, dependants not_checked.

    `influence`: draw the influence map of each causal failure (attnspec.influence) afterwards.
    `skip`: clause IDs the user declares away (reported "not applicable: declared"), on top of
    what the adapter declares (attnspec.declarations)."""
    with torch_threads(threads):
        return _check_candidate(candidate, target=target, kind=kind, profile=profile, seed=seed, only=only, influence=influence, skip=skip)


def _declare(clause_results, declared):
    """Declared clauses read "not applicable: declared (...)"; clauses the kind never has stay as they are."""
    for c in clause_results:
        if c.id in declared and not (c.status == "skipped" and c.message.startswith("not applicable to")):
            c.status, c.message = "skipped", declared[c.id]
            c.expected = c.observed = c.reproduce = ""
            c.counterexample = None
    return clause_results


def _check_candidate(candidate, *, target, kind, profile, seed, only, influence=True, skip=()):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    from . import SPEC_VERSION, __version__

    start = time.perf_counter()
    info = dict(candidate.info)
    wanted = {spec.get(c).id for c in only} if only else None
    declared = declared_skips(info, skip)
    failed_gates = {}
    outcomes = []
    for p in properties_for(kind):
        if wanted is not None and not p.gate and not (wanted & set(p.clauses)):
            continue
        if set(p.clauses) <= set(declared):
            outcomes.append(Outcome(p, "skipped", message=declared[p.clauses[0]]))
            continue
        blocked = [g for g in p.needs if g in failed_gates]
        if blocked:
            gate = failed_gates[blocked[0]]
            outcomes.append(Outcome(p, "not_checked", message=f"not checked: {', '.join(gate.clauses)} failed ({gate.message})"))
            continue
        o = run_property(p, candidate, info, kind, profile, seed)
        outcomes.append(o)
        if p.gate and o.status in ("failed", "error"):
            failed_gates[p.gate] = o
    outcomes = _one_report_per_crash(outcomes)
    clause_results = _declare(fold(outcomes, kind, target, profile, seed), declared)
    if wanted is not None:  # a failed gate stays in view: the clauses asked for were not checked because of it
        gates = {cid for o in failed_gates.values() for cid in o.clauses}
        clause_results = [c for c in clause_results if c.id in wanted or (c.id in gates and c.status in ("failed", "error"))]
    if influence:  # a picture of each causal failure; it never raises and never changes a verdict
        from .influence import attach

        attach(clause_results, candidate, info)
    reach = {}
    for o in outcomes:
        for cond, n in o.reached.items():
            reach[cond] = reach.get(cond, 0) + n
    return Result(
        target=target,
        kind=kind,
        verdict=verdict_of(clause_results),
        clauses=clause_results,
        seed=seed,
        profile=profile,
        tool={"name": "attnspec", "version": __version__, "spec_version": SPEC_VERSION},
        environment=environment(),
        declarations={k: v for k, v in info.items() if k not in ("name",)} | ({"skip_requested": list(skip)} if skip else {}),
        reach=dict(sorted(reach.items())),
        duration_s=round(time.perf_counter() - start, 3),
    )


def check_target(target, *, kind=None, profile="default", seed=None, only=None, emulation="none", skip=()):
    """Load TARGET in this process (trusted code) and check each object found: a list of Results.

    Each target first passes the preflight stage (attnspec.preflight): glue that
    cannot build, load or call it raises PreflightError before any property runs.
    `emulation` runs it as on other hardware (attnspec.emulation): the suite's
    own tests use it to show verdicts do not depend on the machine.
    """
    from . import preflight
    from .emulation import emulate, threads_for
    from .targets import load_target

    if seed is None:
        seed = 0
    loaded = load_target(target, kind)
    for label, adapter in loaded:
        preflight.run(adapter)
    results = []
    for label, adapter in loaded:
        candidate = LocalCandidate(emulate(adapter, emulation))
        results.append(check_candidate(candidate, target=label, kind=adapter.kind, profile=profile, seed=seed, only=only, threads=threads_for(emulation), skip=skip))
    return results
