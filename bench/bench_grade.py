"""Seconds per submission for `attnspec grade` with full isolation, beside one `import torch`.

Writes generated five-class submissions (the reference SelfAttention_v1, v2,
CausalAttention, MultiHeadAttentionWrapper and MultiHeadAttention in one file,
and copies with the causal mask or the scaling removed) to a temporary folder,
grades them in one batch (sandboxed workers forked from the zygote) with
`--jobs`, and prints two costs per submission next to the cost of
`python -c "import torch"` measured in the same run (before and after):

- steady state: from the moment every grading process has finished its first
  submission to the end of the batch, per submission finished in between.
  This is what each further submission of a class costs.  Goal (issue 10):
  at most 1x an `import torch` with --jobs 2.
- whole batch: the batch's wall clock over its size, start-up included (each
  grading process starts a zygote, a fresh interpreter importing torch, and
  its first submission runs every property under hypothesis; later ones
  replay them, attnspec.replay).  It falls towards the steady state as the
  batch grows.

    python bench/bench_grade.py                  # the default rubric, every clause, --jobs 2
    python bench/bench_grade.py -n 40            # a larger batch
    python bench/bench_grade.py --isolation-only # 3 clauses, quick profile: the cost of isolation alone
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from attnspec.grading import grade, rubric

import five_classes

N = 12


def submissions(folder, n):
    """n five-class files: correct, MultiHeadAttention without its mask, without its scaling, in turn."""
    bugs = (None, "mask", "scale")
    return [five_classes.write(os.path.join(folder, f"student{i:02d}.py"), bugs[i % 3], f"student {i}") for i in range(n)]


def fresh_process_seconds(code, repeats=3):
    """The median of a few fresh `python -c CODE` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_torch_seconds():
    return fresh_process_seconds("import torch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=N, help="submissions to grade")
    parser.add_argument("--jobs", type=int, default=2, help="grading processes, as attnspec grade --jobs")
    parser.add_argument("--isolation-only", action="store_true", help="3 clauses, quick profile: what isolation alone costs")
    args = parser.parse_args()
    if args.n < 2 * args.jobs:
        parser.error(f"-n must be at least twice --jobs ({2 * args.jobs}) to see a steady state")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        subs = grade.discover(submissions(tmp, args.n))
        rub = rubric.load(None, profile="quick" if args.isolation_only else None)
        if args.isolation_only:
            rub = rubric.Rubric({**rub.data, "classes": ["MultiHeadAttention"], "only": ["IFACE-2", "SHAPE-4", "CAUSAL-1"]})
        torch_before = import_torch_seconds()
        finished = []
        start = time.perf_counter()
        records = grade.grade_batch(subs, rub, os.path.join(tmp, "out"), jobs=args.jobs,
                                    progress=lambda record, **_: finished.append(time.perf_counter()))
        end = time.perf_counter()
        torch_after = import_torch_seconds()
        iso = records[0]["isolation"] or {}
        scores = sorted({r["score"] for r in records})
        statuses = sorted({r["status"] for r in records})
    torch_s = (torch_before + torch_after) / 2  # before and after the batch: load drifts alike for both
    whole = (end - start) / args.n
    # every process has finished its first submission once `jobs` have finished
    steady = (finished[-1] - finished[args.jobs - 1]) / (args.n - args.jobs)
    what = "MultiHeadAttention, 3 clauses, quick" if args.isolation_only else "default, five classes, every clause"
    print(f"submissions graded         {args.n} with --jobs {args.jobs} (statuses: {', '.join(statuses)}; scores seen: {scores}; rubric: {what})")
    print(f"isolation                  network: {iso.get('network')}; uid: {iso.get('uid')}")
    print(f'python -c "import torch"   {torch_s:.3f} s  (median of 3 before: {torch_before:.3f}, after: {torch_after:.3f})')
    print(f"steady state               {steady:.3f} s per submission  ratio {steady / torch_s:.2f}  (goal: at most 1; {'met' if steady <= torch_s else 'NOT met'})")
    print(f"whole batch of {args.n:<11d} {whole:.3f} s per submission  ratio {whole / torch_s:.2f}  (start-up included)")


if __name__ == "__main__":
    main()
