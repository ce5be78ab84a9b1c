"""Seconds per submission for `attnspec grade` with full isolation, beside one `import torch`.

Writes 50 generated submissions (the reference MultiHeadAttention, and copies
with the causal mask or the scaling removed) to a temporary folder, grades
them in one batch (sandboxed workers forked from the zygote, a small rubric),
and prints the cost per submission next to the cost of `python -c "import
torch"` measured in the same run.  The goal is a ratio under 1: isolation
must not cost a torch import per submission.

    python bench/bench_grade.py            # isolation overhead: 3 clauses, quick profile
    python bench/bench_grade.py --full -n 10   # the default rubric's MultiHeadAttention clauses
"""

import argparse

import inspect
import os
import subprocess
import sys
import tempfile
import time

from attnspec.grading import grade, rubric
from attnspec.reference import multihead

N = 50
MASK = "attn_scores.masked_fill_(mask_bool, -torch.inf)"
SCALE = "attn_scores / keys.shape[-1] ** 0.5"


def submissions(folder, n):
    source = "import torch\nimport torch.nn as nn\n\n\n" + inspect.getsource(multihead.MultiHeadAttention)
    variants = [source, source.replace(MASK, "pass"), source.replace(SCALE, "attn_scores")]
    assert all(v != source for v in variants[1:]), "the reference changed: update the mutations"
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"student{i:02d}.py")
        with open(path, "w") as fh:
            fh.write(variants[i % len(variants)] + f"\n# student {i}\n")
        paths.append(path)
    return paths


def import_torch_seconds():
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=N, help="submissions to grade")
    parser.add_argument("--full", action="store_true", help="every clause of the default rubric for MultiHeadAttention")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        subs = grade.discover(submissions(tmp, args.n))
        if args.full:
            rub = rubric.load(None)
            rub = rubric.Rubric({**rub.data, "classes": ["MultiHeadAttention"]})
        else:
            rub = rubric.load(None, profile="quick")
            rub = rubric.Rubric({**rub.data, "classes": ["MultiHeadAttention"], "only": ["IFACE-2", "SHAPE-4", "CAUSAL-1"]})
        torch_s = import_torch_seconds()
        start = time.perf_counter()
        records = grade.grade_batch(subs, rub, os.path.join(tmp, "out"))
        per = (time.perf_counter() - start) / args.n
        iso = records[0]["isolation"] or {}
        scores = sorted({r["score"] for r in records})
    print(f"submissions graded      {args.n} (scores seen: {scores}; rubric: {'default, every clause' if args.full else '3 clauses, quick'})")
    print(f"isolation               network: {iso.get('network')}; uid: {iso.get('uid')}")
    print(f"seconds per submission  {per:.3f}")
    print(f'python -c "import torch" {torch_s:.3f}')
    print(f"ratio                   {per / torch_s:.2f} (goal: under 1)")


if __name__ == "__main__":
    main()
