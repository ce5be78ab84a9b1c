"""Run the properties for one target and fold their outcomes into a `Result`.

Each property becomes a hypothesis test over `st.data()`, seeded with the
run's seed (printed in every report, accepted back with --seed), with no
deadline and no example database, so a run is reproducible; the examples
depend on that seed alone (attnspec.generation).  Hypothesis shrinks a
failure to its smallest example; the engine keeps the case that example
drew, the clause IDs the violation names, and its plain message.  A run
the same key already completed in this process is replayed instead
(attnspec.replay): the same outcome without hypothesis's overhead.

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
from . import generation, replay
from .assertions import ClauseViolation
from .candidate import CandidateError, LocalCandidate
from .config import CAUSAL_KINDS, Config
from .context import Context, NotApplicable, runs_at_full_length
from .declarations import declared_skips
from .properties import properties_for
from .strategies import Case
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


def _described(notes):
    """The notes of an example as plain data for reports: cases become their describe() dicts."""
    if notes is None:
        return None
    return {k: v.describe() if isinstance(v, Case) else v for k, v in notes.items()}


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


UNFINISHED = object()


class _Tally:
    """What the examples of one property run add up to, whether hypothesis or a replay ran them."""

    def __init__(self):
        self.notes = None
        self.ending = UNFINISHED
        self.calls = 0
        self.skipped = 0
        self.skip_reason = ""
        self.reached = {}

    def run(self, p, ctx):
        """One example: the property on `ctx`; NotApplicable counts as skipped, anything else propagates.

        `ending` says how it ended, for attnspec.replay: None (finished),
        replay.STOPPED (hypothesis stopped it in a draw), the exception's
        signature (taken here, so it reads the same whoever called), or
        UNFINISHED (a way no replay repeats).
        """
        self.calls += 1
        self.ending = UNFINISHED
        try:
            p.fn(ctx)
            self.ending = None
        except NotApplicable as why:
            self.skipped += 1
            self.skip_reason = str(why)
            self.ending = None
        except HypothesisException:
            raise
        except Exception as exc:
            self.ending = replay.signature(exc)
            raise
        except BaseException:
            if getattr(ctx.data, "stopped", False):
                self.ending = replay.STOPPED
            raise
        finally:
            self.notes = ctx.notes
            for cond in ctx.reached:
                self.reached[cond] = self.reached.get(cond, 0) + 1
            ctx.release_all()

    def outcome(self, p):
        if self.calls and self.skipped == self.calls:
            return Outcome(p, "skipped", message=self.skip_reason)
        return Outcome(p, "passed")


def run_property(p, candidate, info, kind, profile="default", seed=0):
    """Run one property as a seeded hypothesis test; return its Outcome.

    When the same property ran before in this process under the same key
    (attnspec.replay), the examples of those runs are replayed first, without
    hypothesis: the same outcome at a fraction of the cost, or, as soon as
    the target behaves as no recorded run did, the hypothesis run below as if
    nothing had been kept.
    """
    max_examples = max(1, round(PROFILES[profile] * p.examples))
    key = replay.key(p, kind, profile, seed, max_examples, info)
    recordings = replay.lookup(key)
    if recordings:
        outcome = _replayed(p, candidate, info, kind, profile, recordings)
        if outcome is not None:
            return outcome
    return _run_hypothesis(p, candidate, info, kind, profile, seed, max_examples, key)


def _replayed(p, candidate, info, kind, profile, recordings):
    """The Outcome of following the recordings with this target, or None when the run must go to hypothesis."""
    start = time.perf_counter()
    tally, walk, failure = _Tally(), replay.Replay(recordings), None
    try:
        while (step := walk.next_draws()) is not None:
            data = replay.Replayer(*step)
            failure = None
            try:
                tally.run(p, Context(candidate, info, data, kind, profile))
            except replay.Stopped:
                pass
            except Exception as exc:  # noqa: BLE001 - a failing example: recorded runs may end the same way
                failure = exc
            if not data.finished or tally.ending is UNFINISHED:
                return None
            walk.ended(tally.ending)
    except replay.Diverged:
        return None
    outcome = tally.outcome(p) if failure is None else _failed(p, candidate, failure, tally)
    return _counted(outcome, tally, start)


def _counted(outcome, tally, start):
    outcome.examples, outcome.reached = tally.calls, tally.reached
    outcome.duration_s = time.perf_counter() - start
    return outcome


def _failed(p, candidate, exc, tally):
    """The Outcome of a run whose last example raised `exc` (a violation, a crash, or Flaky)."""
    found = _first_violation(exc)
    if isinstance(found, ClauseViolation):
        outcome = Outcome(p, "failed", found.clauses, found.message, found.expected, found.observed)
        outcome.crash = getattr(found, "crash", "")
    elif isinstance(found, CandidateError) and found.reason == "not_run":
        outcome = Outcome(p, "not_checked", message=f"not checked: {found.message}")
    elif isinstance(found, CandidateError) and found.reason == "mapping":
        outcome = Outcome(p, "not_checked", message=f"not checked: the canonical weights cannot be transferred (IFACE-8): {found.message}")
    elif isinstance(found, CandidateError):
        outcome = Outcome(p, "failed", _crash_clauses(p, candidate, _described(tally.notes), found), found.plain())
        outcome.crash = found.exc_type
    else:
        outcome = Outcome(p, "failed", p.clauses[:1], "the implementation behaves differently on the same input")
    if isinstance(exc, Flaky):
        outcome.message += " (the failure did not reproduce on replay: the implementation is not deterministic)"
    outcome.counterexample = _described(tally.notes)
    return outcome


def _run_hypothesis(p, candidate, info, kind, profile, seed, max_examples, key):
    tally = _Tally()
    examples = []  # (draws, ending) of each example, kept for attnspec.replay when the run completes
    shareable = [True]  # every example finished or raised an ordinary exception, and drew only immutable values

    @settings(settings.get_profile(f"attnspec-{profile}"), max_examples=max_examples)
    @hypothesis_seed(seed)
    @given(data=st.data())
    def test(data):
        recorder = replay.Recorder(data)
        try:
            tally.run(p, Context(candidate, info, recorder, kind, profile))
        finally:
            if tally.ending is UNFINISHED or not recorder.shareable:
                shareable[0] = False
            else:
                examples.append((tuple(recorder.draws), tally.ending))

    # no example database, so no key: as hypothesis.find does, which spares digesting the source per run
    test._hypothesis_internal_database_key = None
    start = time.perf_counter()
    failed = None  # whether the run ended in a failure hypothesis reported; None: keep nothing (Flaky, errors)
    try:
        with generation.seed_only():
            test()
        outcome = tally.outcome(p)
        failed = False
    except (ClauseViolation, CandidateError, Flaky) as exc:
        outcome = _failed(p, candidate, exc, tally)
        failed = None if isinstance(exc, Flaky) else True
    except HypothesisException as exc:
        outcome = Outcome(p, "error", p.clauses[:1], f"the suite could not run this property: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug in the suite itself: say so, never blame the target
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        outcome = Outcome(p, "error", p.clauses[:1], f"internal error in the suite ({p.name}): {tail}")
    recording = replay.Recording(tuple(examples))
    if failed is not None and recording.failed == failed and shareable[0] and len(examples) == tally.calls:
        replay.keep(key, recording)  # only when its last example ended as the whole run did
    return _counted(outcome, tally, start)


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


def check_candidate(candidate, *, target, kind, profile="default", seed=0, only=None, threads=1, influence=True, skip=(), jobs=1):
    """Every property for `kind` against `candidate`; gates first, dependants not_checked.

    `influence`: draw the influence map of each causal failure (attnspec.influence) afterwards.
    `skip`: clause IDs the user declares away (reported "not applicable: declared"), on top of
    what the adapter declares (attnspec.declarations).  `jobs`: see `check_candidates`."""
    return check_candidates([(candidate, target, kind)], profile=profile, seed=seed, only=only, threads=threads,
                            influence=influence, skip=skip, jobs=jobs)[0]


def check_candidates(items, *, profile="default", seed=0, only=None, threads=1, influence=True, skip=(), jobs=1):
    """A Result for each (candidate, target, kind) in `items`, in order.

    `jobs` > 1 (or "auto") runs the properties of all items in that many
    processes forked from this one (attnspec.pool): every property is seeded
    on its own, so the verdicts are the same as with one process.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    from .pool import usable_jobs

    start = time.perf_counter()
    plans = [_plan(candidate, target, kind, only, skip) for candidate, target, kind in items]
    with torch_threads(threads):
        jobs = usable_jobs(jobs)
        if jobs > 1 and sum(o is None for plan in plans for o in plan.outcomes) > 1:
            _run_in_workers(plans, profile, seed, jobs, threads)
        else:
            for plan in plans:
                _run_here(plan, profile, seed)
        return [_finish(plan, profile, seed, influence, start) for plan in plans]


@dataclass
class _Plan:
    """One target's properties in registry order, and their outcomes (None: still to run)."""

    candidate: object
    target: str
    kind: str
    info: dict
    wanted: set
    declared: dict
    skip: tuple
    props: list
    outcomes: list


def _plan(candidate, target, kind, only, skip):
    info = dict(candidate.info)
    wanted = {spec.get(c).id for c in only} if only else None
    declared = declared_skips(info, skip)
    props, outcomes = [], []
    for p in properties_for(kind):
        if wanted is not None and not p.gate and not (wanted & set(p.clauses)):
            continue
        props.append(p)
        outcomes.append(Outcome(p, "skipped", message=declared[p.clauses[0]]) if set(p.clauses) <= set(declared) else None)
    return _Plan(candidate, target, kind, info, wanted, declared, tuple(skip), props, outcomes)


_WAIT = object()


def _blocker(plan, p):
    """The failed gate's Outcome that stops `p`, _WAIT while a gate it needs is still running, else None."""
    for k, q in enumerate(plan.props):
        if q.gate and q.gate in p.needs:
            o = plan.outcomes[k]
            if o is None:
                return _WAIT
            if o.status in ("failed", "error"):
                return o
    return None


def _not_checked(gate):
    return f"not checked: {', '.join(gate.clauses)} failed ({gate.message})"


def _run_here(plan, profile, seed):
    """Each property in registry order in this process (the gates come first)."""
    for k, p in enumerate(plan.props):
        if plan.outcomes[k] is None:
            gate = _blocker(plan, p)
            if gate is not None and gate is not _WAIT:
                plan.outcomes[k] = Outcome(p, "not_checked", message=_not_checked(gate))
            else:
                plan.outcomes[k] = run_property(p, plan.candidate, plan.info, plan.kind, profile, seed)


def _run_in_workers(plans, profile, seed, jobs, threads):
    """Every property still to run, in `jobs` forked workers, the gates and then the longest first.

    Dependants start before their gates finish; when a gate fails, the ones
    not yet started are cancelled and every dependant is not_checked, as in
    `_run_here`.  If a worker dies (the code under test crashed its process),
    what is not finished is run here, one by one, as without workers.
    """
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from .pool import ForkPool

    def task(i, k):
        plan = plans[i]
        o = run_property(plan.props[k], plan.candidate, plan.info, plan.kind, profile, seed)
        return {f: getattr(o, f) for f in Outcome.__dataclass_fields__ if f != "prop"}

    todo = [(i, k) for i, plan in enumerate(plans) for k, o in enumerate(plan.outcomes) if o is None]
    todo.sort(key=lambda ik: (not plans[ik[0]].props[ik[1]].gate, -plans[ik[0]].props[ik[1]].examples))
    try:
        with ForkPool(task, jobs, threads) as pool:
            running = {pool.submit(i, k): (i, k) for i, k in todo}
            for future in as_completed(running):
                if future.cancelled():
                    continue
                i, k = running[future]
                plan, p = plans[i], plans[i].props[k]
                plan.outcomes[k] = Outcome(p, **future.result())
                if p.gate and plan.outcomes[k].status in ("failed", "error"):
                    for f, (j, m) in running.items():
                        if j == i and p.gate in plan.props[m].needs:
                            f.cancel()
    except BrokenProcessPool:
        pass
    for plan in plans:  # the gates' verdicts over their dependants, and anything a dead worker left
        for k, p in enumerate(plan.props):
            gate = _blocker(plan, p)
            if gate is not None and gate is not _WAIT:
                plan.outcomes[k] = Outcome(p, "not_checked", message=_not_checked(gate))
        _run_here(plan, profile, seed)


def _declare(clause_results, declared):
    """Declared clauses read "not applicable: declared (...)"; clauses the kind never has stay as they are."""
    for c in clause_results:
        if c.id in declared and not (c.status == "skipped" and c.message.startswith("not applicable to")):
            c.status, c.message = "skipped", declared[c.id]
            c.expected = c.observed = c.reproduce = ""
            c.counterexample = None
    return clause_results


def _finish(plan, profile, seed, influence, start):
    """Fold one plan's outcomes into its Result."""
    from . import SPEC_VERSION, __version__

    kind, target, info, wanted, declared = plan.kind, plan.target, plan.info, plan.wanted, plan.declared
    failed_gates = [o for p, o in zip(plan.props, plan.outcomes) if p.gate and o.status in ("failed", "error")]
    outcomes = _one_report_per_crash(plan.outcomes)
    clause_results = _declare(fold(outcomes, kind, target, profile, seed), declared)
    if wanted is not None:  # a failed gate stays in view: the clauses asked for were not checked because of it
        gates = {cid for o in failed_gates for cid in o.clauses}
        clause_results = [c for c in clause_results if c.id in wanted or (c.id in gates and c.status in ("failed", "error"))]
    if influence:  # a picture of each causal failure; it never raises and never changes a verdict
        from .influence import attach

        attach(clause_results, plan.candidate, info)
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
        declarations={k: v for k, v in info.items() if k not in ("name",)} | ({"skip_requested": list(plan.skip)} if plan.skip else {}),
        reach=dict(sorted(reach.items())),
        duration_s=round(time.perf_counter() - start, 3),
    )


def check_target(target, *, kind=None, profile="default", seed=None, only=None, emulation="none", skip=(), jobs=1):
    """Load TARGET in this process (trusted code) and check each object found: a list of Results.

    Each target first passes the preflight stage (attnspec.preflight): glue that
    cannot build, load or call it raises PreflightError before any property runs.
    `emulation` runs it as on other hardware (attnspec.emulation): the suite's
    own tests use it to show verdicts do not depend on the machine.  `jobs`:
    processes to spread the properties over (see `check_candidates`).
    """
    from . import preflight
    from .emulation import emulate, threads_for
    from .targets import load_target

    if seed is None:
        seed = 0
    loaded = load_target(target, kind)
    for label, adapter in loaded:
        preflight.run(adapter)
    items = [(LocalCandidate(emulate(adapter, emulation)), label, adapter.kind) for label, adapter in loaded]
    return check_candidates(items, profile=profile, seed=seed, only=only, threads=threads_for(emulation), skip=skip, jobs=jobs)
