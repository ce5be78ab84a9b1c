"""False failures of correct code over many random seeds: the specificity the README claims, measured.

Checks every gallery entry (tests/gallery) and example (examples/) under seeds
1..N (seed 0 is what CI checks) and the chosen emulations of other hardware,
each in its own forked process, and prints false failures / checks with the
clause and message of each.  The goal is 0.  Not part of CI: 50 seeds take
about half an hour on 2 cores.

    python bench/bench_seed_sweep.py [--seeds 50] [--emulations none,ulps] [--jobs 2] [--profile default]
"""

import argparse
import collections
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    from attnspec import SPEC_VERSION, __version__
    from attnspec.selftest import Job, _emulations, discover, run_forked

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds 1..N")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--emulations", type=_emulations, default=("none",))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--only", default="", help="check only entries whose name contains this")
    args = parser.parse_args()
    entries = discover(str(ROOT / "tests" / "gallery"), "gallery") + discover(str(ROOT / "examples"), "gallery")
    entries = [e for e in entries if not e.missing and args.only in e.name and "transformers" not in open(e.path).read()]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    # seed by seed: checks with the same seed replay each other's runs (attnspec.replay) while they are kept
    jobs = [Job(e, s, how) for s in seeds for e in entries for how in args.emulations]
    start = time.perf_counter()
    done = run_forked(jobs, args.profile, False, args.jobs)
    elapsed = time.perf_counter() - start
    import torch

    failures = [(job, run) for job, run in zip(jobs, done) if not run.accepted]
    by_clause = collections.Counter(c for _, run in failures for c in (run.required_failed or [run.status]))
    print(f"attnspec {__version__} (spec {SPEC_VERSION}), torch {torch.__version__}, {platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"{len(entries)} correct implementations x {args.seeds} seeds ({seeds.start}..{seeds.stop - 1}) x emulations {','.join(args.emulations)}, profile {args.profile}, {elapsed:.0f} s")
    print(f"false failures: {len(failures)} / {len(done)} checks")
    for clause, n in by_clause.most_common():
        print(f"  {clause}: {n}")
    for job, run in sorted(failures, key=lambda f: (f[0].entry.name, f[0].seed)):
        cid = (run.required_failed or [""])[0]
        print(f"  {job.entry.name} {run.label}: {cid or run.status}: {(run.messages.get(cid) or run.detail)[:240]}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
