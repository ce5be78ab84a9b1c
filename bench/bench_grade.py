"""Seconds per submission for `attnspec grade` with full isolation, beside one `import torch`.

Writes generated five-class submissions (the reference SelfAttention_v1, v2,
CausalAttention, MultiHeadAttentionWrapper and MultiHeadAttention in one file,
and copies with the causal mask or the scaling removed) to a temporary folder,
grades them in one batch (sandboxed workers forked from the zygote) with
`--jobs`, and prints the wall-clock cost per submission next to the cost of
`python -c "import torch"` measured in the same run.  Goal (issue 10): a full
default-rubric grade at most 1x an `import torch` per submission with --jobs 2.

    python bench/bench_grade.py                  # the default rubric, every clause, --jobs 2
    python bench/bench_grade.py --isolation-only # 3 clauses, quick profile: the cost of isolation alone
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from attnspec.grading import grade, rubric

import five_classes

N = 10


def submissions(folder, n):
    """n five-class files: correct, MultiHeadAttention without its mask, without its scaling, in turn."""
    bugs = (None, "mask", "scale")
    return [five_classes.write(os.path.join(folder, f"student{i:02d}.py"), bugs[i % 3], f"student {i}") for i in range(n)]


def import_torch_seconds(repeats=3):
    """The median of a few fresh `python -c "import torch"` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=N, help="submissions to grade")
    parser.add_argument("--jobs", type=int, default=2, help="grading processes, as attnspec grade --jobs")
    parser.add_argument("--isolation-only", action="store_true", help="3 clauses, quick profile: what isolation alone costs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        subs = grade.discover(submissions(tmp, args.n))
        rub = rubric.load(None, profile="quick" if args.isolation_only else None)
        if args.isolation_only:
            rub = rubric.Rubric({**rub.data, "classes": ["MultiHeadAttention"], "only": ["IFACE-2", "SHAPE-4", "CAUSAL-1"]})
        torch_s = import_torch_seconds()
        start = time.perf_counter()
        records = grade.grade_batch(subs, rub, os.path.join(tmp, "out"), jobs=args.jobs)
        per = (time.perf_counter() - start) / args.n
        torch_after = import_torch_seconds()
        iso = records[0]["isolation"] or {}
        scores = sorted({r["score"] for r in records})
        statuses = sorted({r["status"] for r in records})
    torch_s = (torch_s + torch_after) / 2  # before and after the batch: load drifts alike for both
    what = "MultiHeadAttention, 3 clauses, quick" if args.isolation_only else "default, five classes, every clause"
    print(f"submissions graded       {args.n} with --jobs {args.jobs} (statuses: {', '.join(statuses)}; scores seen: {scores}; rubric: {what})")
    print(f"isolation                network: {iso.get('network')}; uid: {iso.get('uid')}")
    print(f"seconds per submission   {per:.3f}  (wall clock of the batch / submissions)")
    print(f'python -c "import torch" {torch_s:.3f}')
    print(f"ratio                    {per / torch_s:.2f} (goal: at most 1)")


if __name__ == "__main__":
    main()
