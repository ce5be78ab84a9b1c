"""Prove the suite on known answers: every mutant must be rejected, every gallery entry accepted.

    attnspec selftest [--zoo tests/zoo] [--gallery tests/gallery] [--seeds 0,1,2]
                      [--profile default] [--jobs 2] [--markdown] [--focused]

The zoo (tests/zoo) holds one small file per realistic bug.  Each defines one
of the book's classes (or the simplified function) and a module-level
`CLAUSES = ["SCALE-1", ...]` naming the clauses the bug violates.  A mutant is
*killed* under a seed when the suite says it does not conform AND at least one
of its tagged clauses is among the failed ones; a failure whose message says
the suite itself broke does not count.  A mutant is killed overall only when it
is killed under every seed.  The gallery (tests/gallery) holds correct
implementations in other styles; each must conform under every seed, or it is
a false failure.

A file may also set `TARGET = "Name"` (which object to check) and
`REQUIRES = ("transformers",)` (skip when a module is missing).  Without
TARGET the one top-level definition with a book name is checked, or, when
there is none, the whole file (its Adapters).

Verdicts must not depend on the machine, so every gallery entry is also
checked as on other hardware (`attnspec.emulation`: last-bit noise, 2 torch
threads, sums in reversed, blocked and float64 order); a false failure under
any of them counts.  Mutants run as they are (`--mutant-emulations` adds
others).  Each check runs in its own process, forked from this one after
torch and the suite are imported (milliseconds, not a fresh interpreter), so
a mutant that crashes or changes global torch state cannot affect the others;
--jobs runs several at once.  Children forked later also inherit the runs
earlier ones kept (attnspec.replay), which changes what a check costs, never
what it finds.  The report gives the kill rate, the
false-failure rate, how many mutants each clause kills, and how often the
generators reached the conditions the clauses need (the engine's `reach`).
Exit status: 0 when every mutant is killed and every gallery entry accepted,
1 otherwise, 2 for bad arguments.
"""

import argparse
import ast
import gc
import importlib.util
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait

from .config import KINDS
from .emulation import EMULATIONS

SUITE_FAULT_MARKERS = ("internal error in the suite", "the suite could not run")
DEFAULT_TIMEOUT_S = 600


# -- the files ---------------------------------------------------------------


@dataclass
class Entry:
    """One zoo or gallery file, read without importing it."""

    path: str
    name: str  # the file stem; pytest ids use it too
    role: str  # "mutant" or "gallery"
    target: str  # what `attnspec check` is given
    clauses: list = field(default_factory=list)
    doc: str = ""
    requires: tuple = ()
    kind: str = ""  # the book name checked, when known from the file

    @property
    def missing(self):
        """Required modules that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


def _literal(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def read_entry(path, role):
    """An Entry for `path`; raises ValueError when the file is malformed."""
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    tree = ast.parse(source, filename=path)
    name = os.path.splitext(os.path.basename(path))[0]
    doc = (ast.get_docstring(tree) or "").strip()
    clauses = _literal(tree, "CLAUSES") or []
    if role == "mutant" and not clauses:
        raise ValueError(f"{path}: a mutant needs a module-level CLAUSES list")
    requires = tuple(_literal(tree, "REQUIRES") or ())
    chosen = _literal(tree, "TARGET")
    booked = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in KINDS]
    if chosen is None and len(booked) == 1:
        chosen = booked[0]
    target = f"{path}:{chosen}" if chosen else path
    kind = chosen if chosen in KINDS else ""
    return Entry(path=path, name=name, role=role, target=target, clauses=list(clauses), doc=doc, requires=requires, kind=kind)


def discover(folder, role):
    """Entries for every non-underscore .py file in `folder`, sorted by name."""
    if not folder or not os.path.isdir(folder):
        return []
    files = sorted(f for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))
    return [read_entry(os.path.join(folder, f), role) for f in files]


# -- judging one target --------------------------------------------------------


def _suite_fault(clause):
    return clause.get("status") == "error" or any(m in (clause.get("message") or "") for m in SUITE_FAULT_MARKERS)


def failed_clauses(result):
    """IDs of clauses the target genuinely failed (suite faults excluded), in spec order."""
    return [c["id"] for c in result.get("clauses", []) if c.get("status") == "failed" and not _suite_fault(c)]


def required_failures(result):
    return [
        c["id"]
        for c in result.get("clauses", [])
        if c.get("status") == "failed" and not _suite_fault(c) and c.get("level") in ("MUST", "IMPLEMENTATION-DEFINED")
    ]


def suite_faults(result):
    return [f"{c['id']}: {c.get('message', '')}" for c in result.get("clauses", []) if _suite_fault(c)]


@dataclass
class Run:
    """One target under one seed."""

    seed: int
    status: str  # completed | timeout | crashed | load_error
    verdicts: list = field(default_factory=list)  # one per object checked in the file
    failed: list = field(default_factory=list)  # clause IDs failed (any object)
    required_failed: list = field(default_factory=list)
    faults: list = field(default_factory=list)  # suite errors
    messages: dict = field(default_factory=dict)  # clause ID -> first failure message
    statuses: dict = field(default_factory=dict)  # clause ID -> worst status over the objects checked
    reach: dict = field(default_factory=dict)
    duration_s: float = 0.0
    detail: str = ""
    emulation: str = "none"

    @property
    def label(self):
        return f"seed {self.seed}" + (f", {self.emulation}" if self.emulation != "none" else "")

    def killed_by(self, tagged):
        if self.status != "completed" or "does_not_conform" not in self.verdicts:
            return []
        return [c for c in self.failed if c in tagged and c in self.required_failed]

    @property
    def accepted(self):
        return self.status == "completed" and self.verdicts and all(v == "conforms" for v in self.verdicts)


def run_from_results(seed, results, duration_s=0.0, emulation="none"):
    """Fold the result dicts of one target (all objects in the file) into a Run."""
    run = Run(seed=seed, status="completed", duration_s=duration_s, emulation=emulation)
    for r in results:
        run.verdicts.append(r.get("verdict"))
        for cid in failed_clauses(r):
            if cid not in run.failed:
                run.failed.append(cid)
        for c in r.get("clauses", []):
            if c.get("status") == "failed" and c["id"] not in run.messages:
                run.messages[c["id"]] = c.get("message", "")
            if c["id"] not in run.statuses or c.get("status") == "failed":
                run.statuses[c["id"]] = c.get("status", "")
        run.required_failed += [c for c in required_failures(r) if c not in run.required_failed]
        run.faults += suite_faults(r)
        for cond, n in (r.get("reach") or {}).items():
            run.reach[cond] = run.reach.get(cond, 0) + n
    return run


def check_in_process(entry, seed=0, profile="default", focused=False, emulation="none"):
    """Check `entry` in this process through the API; a Run.  Used by the pytest tests."""
    import attnspec

    start = time.perf_counter()
    only = entry.clauses if (focused and entry.role == "mutant") else None
    try:
        results = attnspec.check(entry.target, profile=profile, seed=seed, only=only, emulation=emulation)
    except Exception as exc:  # the target could not be loaded at all
        return Run(seed=seed, status="load_error", detail=f"{type(exc).__name__}: {exc}", emulation=emulation)
    return run_from_results(seed, [r.to_dict() for r in results], time.perf_counter() - start, emulation)


@dataclass(frozen=True)
class Job:
    entry: Entry
    seed: int
    emulation: str = "none"


def warm_up():
    """Import everything a check needs, before forking: each child then starts warm.

    No torch computation runs here: a forked child must not inherit a started
    thread pool.
    """
    import attnspec.engine  # noqa: F401
    import attnspec.reference  # noqa: F401
    from attnspec.properties import _load

    _load()
    gc.freeze()  # each child's collections then skip what every child shares (see attnspec.cli)


def _child(conn, job, profile, focused):
    """In the forked child: check one job, send back its Run and the runs it newly kept, exit.

    The parent adds those to its own recordings (attnspec.replay), so every
    child forked later replays them instead of running hypothesis again.
    """
    from . import replay

    inherited = {id(r) for _, r in replay.export()}  # the same objects as the parent's, until replaced
    try:
        run = check_in_process(job.entry, job.seed, profile, focused, job.emulation)
        conn.send({"run": asdict(run), "kept": [(k, r) for k, r in replay.export() if id(r) not in inherited]})
    except BaseException as exc:  # noqa: BLE001 - report anything, never hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_forked(jobs_list, profile="default", focused=False, jobs=1, timeout_s=DEFAULT_TIMEOUT_S, progress=None):
    """Run every Job in a child forked from this process, `jobs` at a time; the Runs, in job order.

    Forking happens from the main thread only, and this process does no
    torch work, so children never inherit a held lock or a thread pool.
    Each child sends back the runs it kept (attnspec.replay); later
    children inherit them and replay instead of running hypothesis again.
    """
    warm_up()
    from . import replay

    context = multiprocessing.get_context("fork")
    pending = deque(enumerate(jobs_list))
    running = {}  # connection -> ((index, job), process, start)
    done = [None] * len(jobs_list)

    def finish(item, run):
        index, job = item
        done[index] = run
        if progress:
            progress(job.entry, run)

    while pending or running:
        while pending and len(running) < max(1, int(jobs)):
            item = pending.popleft()
            job = item[1]
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(sender, job, profile, focused), daemon=True)
            process.start()
            sender.close()
            running[receiver] = (item, process, time.perf_counter())
        for conn in wait(list(running), timeout=1.0):
            item, process, started = running.pop(conn)
            job = item[1]
            elapsed = time.perf_counter() - started
            try:
                payload = conn.recv()
            except (EOFError, OSError):
                payload = None
            conn.close()
            process.join(timeout=5)
            if payload is None:
                code = process.exitcode
                finish(item, Run(seed=job.seed, status="crashed", duration_s=elapsed, emulation=job.emulation, detail=f"the check process ended with exit code {code}"))
            elif "error" in payload:
                finish(item, Run(seed=job.seed, status="crashed", duration_s=elapsed, emulation=job.emulation, detail=payload["error"]))
            else:
                replay.absorb(payload["kept"])
                finish(item, Run(**payload["run"]))
        now = time.perf_counter()
        for conn, (item, process, started) in list(running.items()):
            job = item[1]
            if now - started > timeout_s:
                process.kill()
                process.join()
                conn.close()
                del running[conn]
                finish(item, Run(seed=job.seed, status="timeout", duration_s=timeout_s, emulation=job.emulation, detail=f"no answer within {timeout_s} s"))
    return done


# -- the report ------------------------------------------------------------------


@dataclass
class EntryReport:
    entry: Entry
    runs: list
    outcome: str = ""  # killed | survived | accepted | falsely_failed | skipped
    by: list = field(default_factory=list)  # tagged clauses that failed (mutants) / failing clauses (gallery)
    reason: str = ""

    def judge(self):
        e, runs = self.entry, self.runs
        if not runs:
            self.outcome, self.reason = "skipped", f"needs {', '.join(e.missing)}"
            return self
        bad = [r for r in runs if r.status != "completed"]
        if e.role == "mutant":
            kills = [r.killed_by(e.clauses) for r in runs]
            self.by = sorted({c for k in kills for c in k}, key=lambda c: e.clauses.index(c))
            if all(kills):
                self.outcome = "killed"
            else:
                self.outcome = "survived"
                if bad:
                    self.reason = f"{bad[0].status}: {bad[0].detail}"
                else:
                    missed = [r for r, k in zip(runs, kills) if not k][0]
                    other = ", ".join(missed.required_failed) or "no required clause failed"
                    tagged = ", ".join(f"{c} {missed.statuses.get(c, 'absent')}" for c in e.clauses)
                    faults = f"; suite errors: {missed.faults[0]}" if missed.faults else ""
                    self.reason = f"{missed.label}: {tagged} (failed: {other}){faults}"
        else:
            failing = sorted({c for r in runs for c in r.required_failed})
            self.by = failing
            if all(r.accepted for r in runs):
                self.outcome = "accepted"
            else:
                self.outcome = "falsely_failed"
                worst = [r for r in runs if not r.accepted][0]
                if worst.status != "completed":
                    self.reason = f"{worst.status}: {worst.detail}"
                elif worst.required_failed:
                    cid = worst.required_failed[0]
                    self.reason = f"{worst.label}: {cid}: {worst.messages.get(cid, '')}"
                else:
                    self.reason = f"{worst.label}: verdict {', '.join(worst.verdicts)}; {'; '.join(worst.faults[:1])}"
        return self

    @property
    def kills_in(self):
        return sum(1 for r in self.runs if r.killed_by(self.entry.clauses))

    @property
    def failed_anywhere(self):
        return sorted({c for r in self.runs for c in r.failed})


@dataclass
class SelfTestReport:
    mutants: list
    gallery: list
    seeds: tuple
    profile: str
    focused: bool = False
    duration_s: float = 0.0
    emulations: tuple = ("none",)
    mutant_emulations: tuple = ("none",)

    # -- figures
    def _count(self, items, outcome):
        return sum(1 for i in items if i.outcome == outcome)

    @property
    def killed(self):
        return self._count(self.mutants, "killed")

    @property
    def survivors(self):
        return [m for m in self.mutants if m.outcome == "survived"]

    @property
    def false_failures(self):
        return [g for g in self.gallery if g.outcome == "falsely_failed"]

    @property
    def judged_mutants(self):
        return [m for m in self.mutants if m.outcome != "skipped"]

    @property
    def judged_gallery(self):
        return [g for g in self.gallery if g.outcome != "skipped"]

    @property
    def kill_rate(self):
        n = len(self.judged_mutants)
        return self.killed / n if n else 0.0

    @property
    def false_failure_rate(self):
        n = len(self.judged_gallery)
        return len(self.false_failures) / n if n else 0.0

    @property
    def ok(self):
        return not self.survivors and not self.false_failures

    def clause_kills(self):
        """clause -> (mutants whose run failed it, mutants it alone killed among their tagged clauses)."""
        from . import clauses as spec

        table = {c.id: [0, 0] for c in spec.all_clauses()}
        for m in self.mutants:
            for cid in m.failed_anywhere:
                table.setdefault(cid, [0, 0])[0] += 1
            if m.outcome == "killed" and len(m.by) == 1:
                table.setdefault(m.by[0], [0, 0])[1] += 1
        return table

    def reach(self):
        """condition -> (examples over all runs, targets that never reached it).

        A target counts as "never" only when some other target of its kind did
        reach the condition (num_heads > 1 is out of reach for CausalAttention).
        """
        runs = [(e.entry.name, e.entry.kind or e.entry.name, r) for e in self.mutants + self.gallery for r in e.runs if r.status == "completed"]
        conditions = sorted({c for _, _, r in runs for c in r.reach})
        out = {}
        for cond in conditions:
            total = sum(r.reach.get(cond, 0) for _, _, r in runs)
            kinds = {kind for _, kind, r in runs if r.reach.get(cond)}
            reached = {name for name, _, r in runs if r.reach.get(cond)}
            never = {name for name, kind, _ in runs if kind in kinds and name not in reached}
            out[cond] = (total, len(never))
        return out

    def to_dict(self):
        return {
            "seeds": list(self.seeds),
            "profile": self.profile,
            "focused": self.focused,
            "emulations": list(self.emulations),
            "mutant_emulations": list(self.mutant_emulations),
            "kill_rate": self.kill_rate,
            "false_failure_rate": self.false_failure_rate,
            "mutants": [dict(file=m.entry.name, kind=m.entry.kind, outcome=m.outcome, by=m.by, tagged=m.entry.clauses, failed=m.failed_anywhere, reason=m.reason, runs=[asdict(r) for r in m.runs]) for m in self.mutants],
            "gallery": [dict(file=g.entry.name, outcome=g.outcome, failing=g.by, reason=g.reason, runs=[asdict(r) for r in g.runs]) for g in self.gallery],
            "clause_kills": {k: {"kills": v[0], "sole": v[1]} for k, v in self.clause_kills().items()},
            "reach": {k: {"examples": v[0], "targets_never": v[1]} for k, v in self.reach().items()},
            "duration_s": self.duration_s,
        }

    # -- rendering
    def _rows(self):
        mutant_rows = [
            (m.entry.name, m.entry.kind or "?", m.outcome + (f" {m.kills_in}/{len(m.runs)}" if len(m.runs) > 1 else ""), ", ".join(m.by) or "-", m.reason)
            for m in self.mutants
        ]
        gallery_rows = [
            (g.entry.name, g.outcome + (f" {sum(1 for r in g.runs if r.accepted)}/{len(g.runs)}" if len(g.runs) > 1 else ""), ", ".join(g.by) or "-", g.reason)
            for g in self.gallery
        ]
        clause_rows = [(cid, str(k), str(s)) for cid, (k, s) in self.clause_kills().items()]
        reach_rows = [(cond, str(n), str(never)) for cond, (n, never) in self.reach().items()]
        return mutant_rows, gallery_rows, clause_rows, reach_rows

    def summary_lines(self):
        nm, ng = len(self.judged_mutants), len(self.judged_gallery)
        skipped = len(self.mutants) + len(self.gallery) - nm - ng
        lines = [
            f"seeds {','.join(map(str, self.seeds))}, profile {self.profile}{', focused on tagged clauses' if self.focused else ''}, {self.duration_s:.0f} s",
            f"gallery emulations: {', '.join(self.emulations)}; mutant emulations: {', '.join(self.mutant_emulations)}",
            f"mutants killed: {self.killed}/{nm} (kill rate {100 * self.kill_rate:.1f}%)",
            f"gallery accepted: {ng - len(self.false_failures)}/{ng} (false-failure rate {100 * self.false_failure_rate:.1f}%)",
        ]
        if skipped:
            lines.append(f"skipped: {skipped} (a required module is missing)")
        return lines

    def to_text(self):
        mutant_rows, gallery_rows, clause_rows, reach_rows = self._rows()
        out = ["attnspec selftest", ""]
        out += _plain(("mutant", "kind", "outcome", "killed by", "why it survived"), mutant_rows)
        out += [""] + _plain(("gallery entry", "outcome", "failing clauses", "why"), gallery_rows)
        out += [""] + _plain(("clause", "mutants failing it", "mutants it alone kills (of their tags)"), [r for r in clause_rows if r[1] != "0" or r[2] != "0"])
        idle = [r[0] for r in clause_rows if r[1] == "0"]
        if idle:
            out.append("clauses that fail for no mutant: " + ", ".join(idle))
        out += [""] + _plain(("condition reached", "examples", "targets of a kind that can, never reaching it"), reach_rows)
        out += [""] + self.summary_lines()
        return "\n".join(out)

    def to_markdown(self):
        mutant_rows, gallery_rows, clause_rows, reach_rows = self._rows()
        out = ["## attnspec selftest", ""] + [f"- {line}" for line in self.summary_lines()] + [""]
        out += ["### Mutants", ""] + _markdown(("mutant", "kind", "outcome", "killed by", "why it survived"), mutant_rows)
        out += ["", "### Gallery", ""] + _markdown(("entry", "outcome", "failing clauses", "why"), gallery_rows)
        out += ["", "### Kills per clause", ""] + _markdown(("clause", "mutants failing it", "mutants it alone kills (of their tags)"), clause_rows)
        out += ["", "### Generator reach", ""] + _markdown(("condition", "examples", "targets of a kind that can, never reaching it"), reach_rows)
        return "\n".join(out) + "\n"


def _clip(text, width=90):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _plain(header, rows):
    rows = [tuple(_clip(c) for c in r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    # the last column is free text: do not pad it
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1])) + "  " + r[-1]  # noqa: E731
    return [fmt(header).rstrip(), fmt(tuple("-" * w for w in widths)).rstrip()] + [fmt(r).rstrip() for r in rows]


def _markdown(header, rows):
    esc = lambda c: _clip(c, 160).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]


# -- running everything -------------------------------------------------------------


def run_selftest(zoo_dir, gallery_dir, seeds=(0,), profile="default", jobs=1, *, focused=False, timeout_s=DEFAULT_TIMEOUT_S,
                 progress=None, emulations=EMULATIONS, mutant_emulations=("none",)):
    """Check every zoo and gallery file under every seed (and the gallery under every emulation).

    `focused` checks each mutant only on the properties that judge its tagged
    clauses (much faster; the per-clause kill table then covers those only).
    `progress`, when given, is called with each finished (Entry, Run).
    Returns a SelfTestReport.
    """
    start = time.perf_counter()
    entries = discover(zoo_dir, "mutant") + discover(gallery_dir, "gallery")
    jobs_list = [
        Job(e, s, how)
        for e in entries if not e.missing
        for how in (mutant_emulations if e.role == "mutant" else emulations)
        for s in seeds
    ]
    done = run_forked(jobs_list, profile, focused, jobs, timeout_s, progress)
    runs = {}
    for job, run in zip(jobs_list, done):
        runs.setdefault(job.entry.path, []).append(run)
    reports = [EntryReport(e, runs.get(e.path, [])).judge() for e in entries]
    return SelfTestReport(
        mutants=[r for r in reports if r.entry.role == "mutant"],
        gallery=[r for r in reports if r.entry.role == "gallery"],
        seeds=tuple(seeds),
        profile=profile,
        focused=focused,
        duration_s=time.perf_counter() - start,
        emulations=tuple(emulations),
        mutant_emulations=tuple(mutant_emulations),
    )


def _emulations(text):
    chosen = tuple(e.strip() for e in text.split(",") if e.strip())
    unknown = [e for e in chosen if e not in EMULATIONS]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"emulations are {', '.join(EMULATIONS)} (comma-separated), not {text!r}")
    return chosen


def _seeds(text):
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, not {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def _configure(parser):
    parser.add_argument("--zoo", default=os.path.join("tests", "zoo"), help="folder of mutants (default tests/zoo)")
    parser.add_argument("--gallery", default=os.path.join("tests", "gallery"), help="folder of correct implementations (default tests/gallery)")
    parser.add_argument("--seeds", type=_seeds, default=(0,), help="comma-separated seeds, e.g. 0,1,2,3,4 (default 0)")
    parser.add_argument("--profile", default="default", choices=("quick", "default", "thorough"))
    parser.add_argument("--jobs", type=int, default=1, help="targets checked at once, each in its own process")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    parser.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    parser.add_argument("--focused", action="store_true", help="check mutants only on the properties of their tagged clauses (faster)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds allowed per target and seed")
    parser.add_argument("--emulations", type=_emulations, default=EMULATIONS, help=f"how the gallery is also run, as on other hardware (default all: {','.join(EMULATIONS)})")
    parser.add_argument("--mutant-emulations", type=_emulations, default=("none",), help="the same for mutants (default none)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def add_arguments(subparsers):
    """Add the `selftest` subcommand to an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "selftest",
        help="check the mutant zoo and the correct gallery: every bug rejected, every correct file accepted",
        description=__doc__.split("\n\n")[0],
    )
    _configure(parser)
    parser.set_defaults(func=run_from_args)
    return parser


def run_from_args(args):
    """Run the self-test for parsed arguments; returns the exit status."""
    if not os.path.isdir(args.zoo) and not os.path.isdir(args.gallery):
        print(f"attnspec selftest: neither {args.zoo} nor {args.gallery} is a folder", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("attnspec selftest: --jobs must be at least 1", file=sys.stderr)
        return 2

    def progress(entry, run):
        if not args.quiet:
            verdict = ",".join(run.verdicts) or run.status
            print(f"  {entry.name} {run.label}: {verdict} ({run.duration_s:.1f} s)", file=sys.stderr, flush=True)

    try:
        report = run_selftest(args.zoo, args.gallery, args.seeds, args.profile, args.jobs, focused=args.focused, timeout_s=args.timeout,
                              progress=progress, emulations=args.emulations, mutant_emulations=args.mutant_emulations)
    except ValueError as exc:  # a malformed zoo file
        print(f"attnspec selftest: {exc}", file=sys.stderr)
        return 2
    print(report.to_markdown() if args.markdown else report.to_text())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2, default=str)
    return 0 if report.ok else 1


def main(argv=None):
    parser = _configure(argparse.ArgumentParser(prog="attnspec selftest", description=__doc__.split("\n\n")[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
