"""`attnspec grade` and `attnspec merge`: argument parsing, validation, exit codes.

`add_arguments(subparsers)` adds both subcommands to the main CLI; each sets
`func` to its handler, which returns the exit status: 0 when grading
completed (whatever the students scored), 2 for usage errors (reported in
one line, never a traceback), 3 when the grader itself failed.  Progress
goes to stderr: a redrawn bar on a terminal, one line per submission
otherwise.  `python -m attnspec.grading.cli` runs the same commands alone.
"""

import argparse
import os
import sys
import traceback

GRADESCOPE_RESULTS = "/autograder/results/results.json"


def add_arguments(subparsers):
    g = subparsers.add_parser(
        "grade", help="grade untrusted submissions, each in its own sandboxed worker",
        description="Grade each SUBMISSION (a .py file, a .ipynb notebook, or a folder whose .py and .ipynb files "
                    "define the book's classes) "
                    "in a sandboxed worker; write grades.csv, per-submission JSON and feedback, junit.xml and "
                    "summary.md into --out.",
    )
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--rubric", metavar="TOML", help="rubric overriding the default one")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="grade N submissions in parallel")
    g.add_argument("--resume", action="store_true", help="skip submissions already graded (same hash, tool, rubric)")
    g.add_argument("--shard", metavar="I/N", help="grade only shard I of N (merge the shards with `attnspec merge`)")
    g.add_argument("--gradescope", nargs="?", const=GRADESCOPE_RESULTS, metavar="PATH",
                   help=f"also write Gradescope's results.json (default {GRADESCOPE_RESULTS}); one submission only")
    g.add_argument("--profile", choices=("quick", "default", "thorough"), help="override the rubric's profile")
    g.add_argument("--seed", type=int, help="override the rubric's seed")
    g.add_argument("--network", choices=("auto", "seccomp", "off"), default="auto",
                   help="network isolation: auto = namespace when root, else seccomp (default)")
    g.set_defaults(func=run_grade)
    m = subparsers.add_parser("merge", help="merge the output folders of `attnspec grade --shard` runs",
                              description="Merge graded output folders into one (grades.csv, junit.xml, summary.md).")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True, metavar="DIR")
    m.set_defaults(func=run_merge)


class _Progress:
    def __init__(self, total):
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def __call__(self, record, resumed=False):
        self.done += 1
        sid = record["submission"]["id"]
        tail = "resumed" if resumed else record["status"]
        line = f"[{self.done}/{self.total}] {sid}: {record['score']:g}/{record['max_score']:g} {tail}"
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(f"\r\x1b[2K[{'#' * filled}{'.' * (width - filled)}] {line[:70]}")
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _usage(message):
    sys.stderr.write(f"attnspec: error: {message}\n")
    return 2


def run_grade(args):
    from . import grade, outputs, rubric

    if args.jobs < 1:
        return _usage("--jobs must be at least 1")
    try:
        rub = rubric.load(args.rubric, profile=args.profile, seed=args.seed)
        subs = grade.discover(args.submissions)
        if args.shard:
            subs = grade.shard(subs, args.shard)
    except (rubric.RubricError, grade.UsageError) as exc:
        return _usage(str(exc))
    if args.gradescope and len(subs) != 1:
        return _usage(f"--gradescope grades exactly one submission (got {len(subs)})")
    out = os.path.abspath(args.out)
    if any(os.path.abspath(s.path) == out for s in subs):
        return _usage("--out must not be one of the submissions")
    sys.stderr.write(f"attnspec grade: {len(subs)} submissions, {rub.total():g} points each "
                     f"(configure this maximum in your gradebook)\n")
    try:
        records = grade.grade_batch(subs, rub, out, jobs=args.jobs, resume=args.resume,
                                    network=args.network, progress=_Progress(len(subs)))
        outputs.write_batch(out, records, gradescope_path=args.gradescope)
    except Exception:  # the grader failed, not a student: say so with the traceback
        sys.stderr.write("attnspec grade: internal error (not the students' fault):\n" + traceback.format_exc())
        return 3
    return 3 if any(r["status"] == "grader error" for r in records) else 0


def run_merge(args):
    from . import outputs

    out = os.path.abspath(args.out)
    records, seen = [], {}
    for folder in args.dirs:
        if not os.path.isdir(os.path.join(folder, "submissions")):
            return _usage(f"{folder} is not an `attnspec grade` output folder (no submissions/)")
        for record in outputs.load_records(folder):
            sid = record["submission"]["id"]
            if sid in seen and seen[sid] != record["submission"]["sha256"]:
                return _usage(f"submission {sid} appears in two shards with different contents")
            seen[sid] = record["submission"]["sha256"]
            if os.path.abspath(folder) != out:
                outputs.write_submission(out, record)
            records.append(record)
    unique = {r["submission"]["id"]: r for r in records}
    outputs.write_batch(out, [unique[k] for k in sorted(unique)])
    sys.stderr.write(f"attnspec merge: {len(unique)} submissions into {out}\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="attnspec")
    add_arguments(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
