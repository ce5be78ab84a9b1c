"""Spread independent property runs over worker processes forked from this one.

A check is dozens of independent, separately seeded hypothesis runs, so it
parallelises without changing a verdict: each run gives the same outcome in
whichever process it runs.  Workers are forked after the targets are
imported, so they start warm (no second torch import) and see the same
loaded code.  Forking is only safe from a single-threaded process that has
not started torch's thread pool; `usable_jobs` falls back to one process
otherwise (inside a threaded test runner, say), and `ForkPool.map` runs
everything here when a worker dies, so a crash looks exactly as it would
without workers.
"""

import concurrent.futures
import multiprocessing
import os
import signal
import threading

_TASK = None  # the function the workers call; set before they are forked


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_jobs(jobs):
    """`jobs` as a number of processes: "auto" is the CPUs this process may use (at most 4).

    One when forking is unsafe or impossible here: other threads are running
    (a fork copies their held locks), or the platform has no fork.
    """
    n = min(available_cpus(), 4) if jobs in (None, "auto") else int(jobs)
    if n <= 1 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return n


def _init(threads):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    import torch

    torch.set_num_threads(threads)


def _call(args):
    return _TASK(*args)


class ForkPool:
    """`jobs` forked workers that run `task(*args)`; results come back in submission order."""

    def __init__(self, task, jobs, threads=1):
        global _TASK
        _TASK = task
        self.task = task
        self._pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_init, initargs=(threads,))

    def submit(self, *args):
        return self._pool.submit(_call, args)

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def terminate(self):
        """Stop at once (Ctrl-C, an error here): a worker may be inside code that never returns."""
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.terminate()
