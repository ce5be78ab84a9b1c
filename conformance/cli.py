"""The `attnspec` command: read the spec, check a target, self-test, grade.

Exit codes: 0 conforms (or the command completed), 1 does not conform,
2 the target cannot be loaded or the call is wrong, 3 the suite itself failed.
"""

import argparse
import atexit
import gc
import json
import os
import sys

CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "BUILDKITE", "CIRCLECI", "JENKINS_URL")


class UsageError(Exception):
    """A wrong call: printed as one line, exit code 2."""


def in_ci():
    return any(os.environ.get(v) for v in CI_VARIABLES)


def write_atomically(path, text):
    """Write `text` to `path` via a temporary file and a rename: never a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _seed(value):
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed takes a whole number, not {value!r}") from None
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError("--seed must be between 0 and 2**32 - 1")
    return seed


def _jobs(value):
    if value == "auto":
        return value
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number or 'auto', not {value!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError("--jobs must be at least 1")
    return jobs


def cmd_spec(args):
    from . import clauses, report

    if args.markdown:
        print(report.render_markdown_spec(), end="")
        return 0
    if args.list or not args.clause:
        print(report.render_list())
        return 0
    for cid in args.clause:
        try:
            print(report.render_clause(clauses.get(cid)))
        except clauses.UnknownClause as exc:
            raise UsageError(str(exc)) from None
        print()
    return 0


def cmd_check(args):
    from . import clauses
    from . import preflight
    from .config import KINDS
    from .engine import PROFILES, check_candidates, default_seed
    from .candidate import LocalCandidate
    from .report import render_header, render_result
    from .targets import TargetError, load_target

    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    only = None
    if args.only:
        only = [c.strip() for c in args.only.split(",") if c.strip()]
        for cid in only:
            try:
                clauses.get(cid)
            except clauses.UnknownClause as exc:
                raise UsageError(str(exc)) from None
    skip = [c.strip() for value in args.skip or () for c in value.split(",") if c.strip()]
    for cid in skip:
        try:
            clauses.get(cid)
        except clauses.UnknownClause as exc:
            raise UsageError(f"--skip: {exc}") from None
    if args.kind is not None and args.kind not in KINDS:
        raise UsageError(f"--kind {args.kind}: unknown kind; choose one of {', '.join(KINDS)}")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UsageError(f"--json {args.json}: the folder does not exist")
    seed = args.seed if args.seed is not None else default_seed(in_ci())
    import torch

    # every check runs on one torch thread; set before the targets' own imports run any torch
    # code, so no thread pool exists when the workers are forked (attnspec.pool)
    torch.set_num_threads(1)
    loaded = []
    for target in args.targets:
        try:
            loaded += load_target(target, args.kind)
        except TargetError as exc:
            raise UsageError(f"cannot load {target}: {exc}") from None
    problems = []
    for label, adapter in loaded:  # the glue first: a wrong adapter is exit 2, never the implementation's failure
        try:
            preflight.run(adapter)
        except preflight.PreflightError as exc:
            problems.append(f"cannot check {label}: {exc}")
    if problems:
        raise UsageError("\n".join(problems))
    from . import SPEC_VERSION, __version__

    # what is imported now lives to the end: with torch loaded, each full collection walks a
    # million objects (about 50 ms); frozen, the collector only sees what the checks create
    gc.freeze()

    if not args.quiet:
        render_header({"tool": {"version": __version__, "spec_version": SPEC_VERSION}, "profile": args.profile, "seed": seed})
    items = [(LocalCandidate(adapter), label, adapter.kind) for label, adapter in loaded]
    results = check_candidates(items, profile=args.profile, seed=seed, only=only, skip=skip, jobs=args.jobs)
    if not args.quiet:
        for result in results:
            render_result(result, verbose=args.verbose)
    verdicts = {r.verdict for r in results}
    overall = "does_not_conform" if "does_not_conform" in verdicts else ("error" if "error" in verdicts else "conforms")
    if args.json:
        doc = {"schema": "attnspec-check/1", "verdict": overall, "seed": seed, "profile": args.profile, "results": [r.to_dict() for r in results]}
        write_atomically(args.json, json.dumps(doc, indent=2, default=str))
        from .influence import write_pngs  # influence maps beside the JSON, when matplotlib is installed

        for path in write_pngs(results, args.json):
            if not args.quiet:
                print(f"influence map: {path}")
    return {"conforms": 0, "does_not_conform": 1, "error": 3}[overall]


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(prog="attnspec", description="Conformance specification and tests for chapter-3 self-attention.")
    parser.add_argument("--version", action="version", version=f"attnspec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("spec", help="print a clause of the specification, or list them")
    p.add_argument("clause", nargs="*", help="clause IDs such as CAUSAL-1")
    p.add_argument("--list", action="store_true", help="list every clause")
    p.add_argument("--markdown", action="store_true", help="print the whole spec as Markdown")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("check", help="check an implementation against the spec (trusted code, in this process)")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="path/file.py:Name, package.module:Name, path/file.py, a module "
                   "(package.module: every book name or Adapter in it), or a notebook: path/file.ipynb[:Name]")
    p.add_argument("--kind", help="which book class the target implements, when its name does not say")
    p.add_argument("--profile", default="default", help="quick, default or thorough (examples per property)")
    p.add_argument("--seed", type=_seed, help="replay a run (default: 0 in CI, random otherwise; always printed)")
    p.add_argument("--only", help="comma-separated clause IDs to check")
    p.add_argument("--skip", action="append", metavar="CLAUSE", help="a clause (or comma-separated clauses) your implementation "
                   "deviates from by design; reported 'not applicable: declared' (repeatable)")
    p.add_argument("--jobs", "-j", type=_jobs, default="auto", metavar="N",
                   help="processes to spread the properties over (default: auto, the CPUs available, at most 4; "
                        "the verdicts do not depend on it)")
    p.add_argument("--json", metavar="PATH", help="write the canonical JSON result to PATH")
    p.add_argument("--verbose", "-v", action="store_true", help="show skipped clauses and passing messages")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing; use the exit code and --json")
    p.set_defaults(func=cmd_check)

    for module in ("selftest", "grading.cli"):
        try:
            mod = __import__(f"attnspec.{module}", fromlist=["add_arguments"])
        except ImportError:
            continue
        mod.add_arguments(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"attnspec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnspec: interrupted", file=sys.stderr)
        return 3
    except Exception as exc:  # never a traceback into the suite's internals, unless asked
        if args.debug:
            raise
        print(f"attnspec: internal error (a bug in attnspec, not in your code): {type(exc).__name__}: {exc}\n"
              "run again with --debug for the traceback", file=sys.stderr)
        return 3


def run():
    """The `attnspec` command: `main`, then an exit that skips the interpreter's teardown.

    Once torch is loaded, tearing the interpreter down (clearing every module,
    collecting their objects) takes 0.3-0.5 s, as long as the checks of a
    class.  Nothing in it is needed: the output is flushed and the exit
    handlers (multiprocessing, logging, coverage) run first.  `main` itself
    returns normally, for callers in the same process.
    """
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    run()
