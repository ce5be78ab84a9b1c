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
    m = subparsers.add_parser(
        "merge", help="merge the output folders of `attnspec grade --shard` runs",
        description="Merge graded output folders into one (grades.csv, junit.xml, summary.md). Refuses a submission "
                    "in two folders, folders graded with different attnspec versions, rubrics, profiles or seeds, "
                    "shards of different counts or lists, a shard given twice or unfinished, and missing shards.",
    )
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True, metavar="DIR")
    m.add_argument("--allow-missing", action="store_true",
                   help="merge although some shards of I/N are missing (their submissions are left out)")
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
        everyone = grade.discover(args.submissions)
        subs = grade.shard(everyone, args.shard) if args.shard else everyone
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
        # batch.json first says "not finished": merge refuses a shard that was killed half way
        outputs.write_batch_file(out, grade.batch_info(rub, everyone, subs, args.shard))
        records = grade.grade_batch(subs, rub, out, jobs=args.jobs, resume=args.resume,
                                    network=args.network, progress=_Progress(len(subs)))
        outputs.write_batch(out, records, gradescope_path=args.gradescope,
                            batch=grade.batch_info(rub, everyone, subs, args.shard, finished=True))
    except Exception:  # the grader failed, not a student: say so with the traceback
        sys.stderr.write("attnspec grade: internal error (not the students' fault):\n" + traceback.format_exc())
        return 3
    return 3 if any(r["status"] == "grader error" for r in records) else 0


# what identifies a grading run, in the order merge compares it: (label, path in a record or batch.json)
RUN_IDENTITY = (("attnspec version", ("tool", "version")), ("spec version", ("tool", "spec_version")),
                ("profile", ("rubric", "profile")), ("seed", ("rubric", "seed")),
                ("rubric fingerprint", ("rubric", "fingerprint")))


def _get(data, path):
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _numbers(indices):
    return ", ".join(map(str, sorted(indices)))


def _merge_refusal(inputs, allow_missing):
    """Why these input folders must not be merged (one line), or None; also the merged shard (or None).

    `inputs`: [(folder as given, batch.json or None, records)]."""
    from .outputs import shard_name

    seen_dirs = {}
    for folder, batch, _ in inputs:
        key = os.path.realpath(folder)
        if key in seen_dirs:
            same = seen_dirs[key]
            return (f"{folder} is given twice" if same == folder else f"{same} and {folder} are the same folder"), None
        seen_dirs[key] = folder
        if batch is not None and not batch.get("finished"):
            return (f"{folder} is from an `attnspec grade` run that did not finish; rerun the same command "
                    f"(add --resume to keep what it graded)"), None
    # 1. every record and batch file graded the same way
    first = {}
    for folder, batch, records in inputs:
        sources = ([(f"{folder} (batch.json)", batch)] if batch else []) + [
            (f"{folder} (submission {r['submission']['id']})", r) for r in records]
        for where, data in sources:
            for label, path in RUN_IDENTITY:
                value = _get(data, path)
                if value is None:
                    continue
                if label not in first:
                    first[label] = (value, where)
                elif first[label][0] != value:
                    va, wa = first[label]
                    return (f"cannot merge runs graded differently: {wa} has {label} {va}, "
                            f"{where} has {label} {value} "
                            f"(grade every shard with the same attnspec, rubric, profile and seed)"), None
    # 2. shards: one count, one submission list, each index once, none missing
    parts = [(folder, batch["shard"]) for folder, batch, _ in inputs if batch and batch.get("shard")]
    for folder, part in parts[1:]:
        head, p0 = parts[0]
        if part["of"] != p0["of"]:
            return (f"cannot merge shards of different counts: {head} is shard {shard_name(p0)}, "
                    f"{folder} is shard {shard_name(part)}"), None
        if (part.get("submissions"), part.get("list")) != (p0.get("submissions"), p0.get("list")):
            return (f"cannot merge shards cut from different submission lists: {head} split "
                    f"{p0.get('submissions')} submissions (list {p0.get('list')}), {folder} split "
                    f"{part.get('submissions')} (list {part.get('list')}); give every shard the same SUBMISSION "
                    f"arguments in the same order"), None
    owner = {}
    for folder, part in parts:
        for i in part["index"]:
            if i in owner:
                return f"shard {i}/{part['of']} is given twice: in {owner[i]} and in {folder}", None
            owner[i] = folder
    # 3. each submission once
    where = {}
    for folder, _, records in inputs:
        for r in records:
            sid = r["submission"]["id"]
            if sid in where:
                return (f"submission {sid} is in both {where[sid]} and {folder}: merging a shard twice or "
                        f"overlapping shards would count it twice"), None
            where[sid] = folder
    if not parts or len(parts) < len(inputs):
        return None, None  # some input records no shard: its indices cannot be checked
    n = parts[0][1]["of"]
    missing = sorted(set(range(1, n + 1)) - set(owner))
    if not missing:
        return None, None  # the whole class
    what = f"shard{'s' if len(missing) > 1 else ''} {_numbers(missing)} of {n} {'are' if len(missing) > 1 else 'is'}"
    if not allow_missing:
        return (f"{what} missing (got {_numbers(owner)}); merge every shard, "
                f"or pass --allow-missing to merge without them"), None
    sys.stderr.write(f"attnspec merge: warning: {what} missing; their submissions are not in the merged grades\n")
    return None, dict(parts[0][1], index=sorted(owner))


def run_merge(args):
    from . import grade, outputs

    out = os.path.abspath(args.out)
    inputs = []
    for folder in args.dirs:
        if not os.path.isdir(os.path.join(folder, "submissions")):
            return _usage(f"{folder} is not an `attnspec grade` output folder (no submissions/)")
        try:
            batch = outputs.read_batch(folder)
        except ValueError as exc:
            return _usage(str(exc))
        records = outputs.load_records(folder)
        if batch and isinstance(batch.get("submissions"), list):  # its last run's, not older runs' left there
            listed = set(batch["submissions"])
            have = {r["submission"]["id"] for r in records}
            if listed - have:
                return _usage(f"{folder} has no record of {', '.join(sorted(listed - have)[:5])}, which its "
                              f"batch.json lists; regrade it")
            stale = sorted(have - listed)
            if stale:
                sys.stderr.write(f"attnspec merge: {folder}: leaving out {len(stale)} record{'s' * (len(stale) > 1)} "
                                 f"of an earlier run ({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''})\n")
                records = [r for r in records if r["submission"]["id"] in listed]
        inputs.append((folder, batch, records))
    refusal, part = _merge_refusal(inputs, args.allow_missing)
    if refusal:
        return _usage(refusal)
    records = sorted((r for _, _, rs in inputs for r in rs), key=lambda r: r["submission"]["id"])
    for folder, _, rs in inputs:
        if os.path.abspath(folder) != out:
            for record in rs:
                outputs.write_submission(out, record)
    batch = {"schema": grade.BATCH_SCHEMA, "finished": True, "tool": {"name": "attnspec"}, "rubric": {}}
    for _, (group, key) in RUN_IDENTITY:  # what every input shares
        batch[group][key] = next((_get(src, (group, key)) for _, b, rs in inputs for src in [b or {}, *rs]
                                  if _get(src, (group, key)) is not None), None)
    batch.update(shard=part, submissions=[r["submission"]["id"] for r in records],
                 merged_from=[os.path.abspath(folder) for folder, _, _ in inputs])
    outputs.write_batch(out, records, batch=batch)
    sys.stderr.write(f"attnspec merge: {len(records)} submissions into {out}\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="attnspec")
    add_arguments(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
