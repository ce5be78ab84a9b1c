"""How long `attnspec check` takes on the reference MultiHeadAttention, beside `import torch`.

Both commands run as fresh processes, interleaved, several times in one run;
the medians are compared, so machine load affects both alike.  Goal: ratio <= 2.

    python bench/bench_check.py [--repeats 5] [--profile default]
"""

import argparse
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


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
    args = parser.parse_args()
    torch_cmd = [sys.executable, "-c", "import torch"]
    check_cmd = [sys.executable, "-m", "attnspec", "check", f"{ROOT}/reference/multihead.py:MultiHeadAttention", "--profile", args.profile, "--seed", "0", "--quiet"]
    timed(torch_cmd)  # warm the file cache for both
    torch_times, check_times = [], []
    for _ in range(args.repeats):
        torch_times.append(timed(torch_cmd))
        check_times.append(timed(check_cmd))
    t, c = statistics.median(torch_times), statistics.median(check_times)
    print(f"python -c 'import torch'          median {t:6.2f} s  ({', '.join(f'{x:.2f}' for x in torch_times)})")
    print(f"attnspec check (profile {args.profile:8s}) median {c:6.2f} s  ({', '.join(f'{x:.2f}' for x in check_times)})")
    print(f"ratio check / import torch: {c / t:.2f}  (goal: <= 2)")


if __name__ == "__main__":
    main()
