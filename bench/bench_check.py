"""How long `attnspec check` takes, beside `python -c "import torch"`, measured in one run.

Three commands run as fresh processes, interleaved, several times: `import
torch`, a check of the reference MultiHeadAttention, and a check of a file
holding all five book classes (bench/five_classes.py).  The medians are
compared, so machine load affects all three alike.  Goals (issue 10): one
class at most 1.5x `import torch`, five classes at most 2.5x.

    python bench/bench_check.py [--repeats 5] [--profile default] [--jobs auto]
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import five_classes  # noqa: E402


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--jobs", default="auto", help="attnspec check --jobs (default: auto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        five = five_classes.write(os.path.join(tmp, "five_classes.py"))
        check = [sys.executable, "-m", "attnspec", "check", "--profile", args.profile, "--seed", "0", "--quiet", "--jobs", str(args.jobs)]
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "attnspec check, one class": check + [f"{ROOT}/reference/multihead.py:MultiHeadAttention"],
            "attnspec check, five classes": check + [five],
        }
        for cmd in commands.values():  # warm the file cache for all
            timed(cmd)
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    torch_s = medians["python -c 'import torch'"]
    print(f"{os.cpu_count()} CPUs, profile {args.profile}, --jobs {args.jobs}, {args.repeats} runs each, interleaved")
    for name, ts in times.items():
        print(f"{name:30s} median {medians[name]:6.2f} s  ({', '.join(f'{x:.2f}' for x in ts)})")
    for name, goal in (("attnspec check, one class", 1.5), ("attnspec check, five classes", 2.5)):
        ratio = medians[name] / torch_s
        print(f"ratio {name[16:]:13s} / import torch: {ratio:.2f}  (goal: at most {goal}; {'met' if ratio <= goal else 'NOT met'})")


if __name__ == "__main__":
    main()
