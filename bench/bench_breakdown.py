"""Where the time of a check goes: imports, hypothesis, the code under test, the suite's own numbers.

Measured in one run on the five book classes (bench/five_classes.py), all
in one process, one torch thread:

- imports: `python -c "import torch"` and `python -c "import attnspec.engine"` (with every
  property loaded), each as a fresh process, median of a few;
- a cold check (nothing kept to replay): the time inside the properties' own
  code split into draws (hypothesis choosing the example), calls to the code
  under test (build, load, forward, backward through the Candidate) and the
  rest (the oracle, the error model's bounds, the comparisons); what is left
  of the whole is hypothesis's own engine around each example;
- the same check again, warm: every property replays its kept run
  (attnspec.replay) and the suite's numbers come from attnspec.memo, as every
  submission after the first does in `attnspec grade`.

    python bench/bench_breakdown.py [--profile default]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import five_classes  # noqa: E402
from bench_grade import fresh_process_seconds  # noqa: E402


class Clock:
    """Seconds spent inside wrapped functions, per bucket; nested calls count once, in the outer bucket."""

    def __init__(self):
        self.seconds = {}
        self.depth = 0

    def wrap(self, owner, name, bucket):
        real = getattr(owner, name)
        clock = self

        def timed(*args, **kwargs):
            if clock.depth:
                return real(*args, **kwargs)
            clock.depth += 1
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                clock.seconds[bucket] = clock.seconds.get(bucket, 0.0) + time.perf_counter() - start
                clock.depth -= 1

        setattr(owner, name, timed)


def check_all(loaded, profile):
    from attnspec.candidate import LocalCandidate
    from attnspec.engine import check_candidates

    start = time.perf_counter()
    results = check_candidates([(LocalCandidate(a), label, a.kind) for label, a in loaded], profile=profile, seed=0, influence=False)
    assert all(r.verdict == "conforms" for r in results), [r.verdict for r in results]
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    torch_s = fresh_process_seconds("import torch")
    engine_s = fresh_process_seconds("import attnspec.engine, attnspec.properties as p; p._load()")

    import torch

    torch.set_num_threads(1)
    from attnspec import replay
    from attnspec.candidate import LocalCandidate
    from attnspec.context import Context
    from attnspec.targets import load_target

    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_target(five_classes.write(os.path.join(tmp, "five_classes.py")))
        clock = Clock()  # the properties' own code, with the draws and the candidate calls taken out of it
        clock.wrap(Context, "case", "draws")
        clock.wrap(Context, "draw", "draws")
        for name in ("build", "load", "forward", "backward", "parameters", "buffers", "reinit", "copy_parameters"):
            clock.wrap(LocalCandidate, name, "code under test")
        import attnspec.engine as engine

        real_run = engine._Tally.run

        def run(self, p, ctx):
            clock.seconds["examples"] = clock.seconds.get("examples", 0) + 1
            start = time.perf_counter()
            try:
                return real_run(self, p, ctx)
            finally:
                clock.seconds["properties"] = clock.seconds.get("properties", 0.0) + time.perf_counter() - start

        engine._Tally.run = run
        replay.clear()
        enabled = replay.set_enabled(True)
        cold_s = check_all(loaded, args.profile)
        cold = dict(clock.seconds)
        clock.seconds.clear()
        warm_s = check_all(loaded, args.profile)
        warm = dict(clock.seconds)
        replay.set_enabled(enabled)

    def rows(total, parts):
        inside = parts.get("properties", 0.0)
        draws, calls = parts.get("draws", 0.0), parts.get("code under test", 0.0)
        return [
            ("hypothesis's engine around each example", total - inside),
            ("draws (hypothesis choosing the example)", draws),
            ("the code under test (Candidate calls)", calls),
            ("the suite's own numbers and comparisons", inside - draws - calls),
        ]

    print(f"{os.cpu_count()} CPUs, profile {args.profile}, five classes, {cold['examples']} examples, one process, one torch thread")
    print(f"{'import torch (fresh process)':44s} {torch_s:6.2f} s")
    print(f"{'import attnspec.engine + properties':44s} {engine_s:6.2f} s  ({engine_s - torch_s:+.2f} s over torch)")
    for title, total, parts in (("cold check (every property under hypothesis)", cold_s, cold),
                                ("warm check (replayed, numbers remembered)", warm_s, warm)):
        print(f"{title:44s} {total:6.2f} s  ratio to import torch {total / torch_s:.2f}")
        for what, seconds in rows(total, parts):
            print(f"    {what:40s} {seconds:6.2f} s  {100 * seconds / total:4.0f}%")


if __name__ == "__main__":
    main()
