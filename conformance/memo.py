"""The suite's own numbers, remembered by the content of their inputs.

The oracle, the error model's bounds and the plain baselines are pure
functions of a configuration, canonical weights and an input, all generated
by the suite from the seed.  Grading checks the same examples on every
submission of a class (the same seed; attnspec.replay), so after the first
submission those numbers are the same again.  `remembered` keeps them,
keyed by the bytes of every array argument (a digest, not the arrays), in a
bounded store per function.  A result is returned read-only: a caller that
wrote into it would change what the next caller is given, so that raises
instead.  Nothing from the code under test ever enters a key or a value.
"""

import collections
import functools
import hashlib

import numpy as np

from .config import Config

MAX_ENTRIES = 8192


def _digest(a):
    a = np.ascontiguousarray(a)
    return (a.shape, a.dtype.str, hashlib.blake2b(a.tobytes(), digest_size=16).digest())


def _part(value):
    """A hashable stand-in for one argument: arrays by content, dicts of arrays item by item."""
    if isinstance(value, np.ndarray):
        return _digest(value)
    if isinstance(value, dict):
        return tuple((k, _part(v)) for k, v in sorted(value.items()))
    if value is None or isinstance(value, (str, int, float, bool, Config)):
        return value
    raise TypeError(f"cannot remember a call with an argument of type {type(value).__name__}")


def _frozen(result):
    if isinstance(result, np.ndarray):
        result.setflags(write=False)
    elif isinstance(result, (list, tuple)):
        for item in result:
            _frozen(item)
    return result


def remembered(fn):
    """`fn` with its results kept by the content of its arguments (at most MAX_ENTRIES, least recent out)."""
    store = collections.OrderedDict()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = tuple(_part(a) for a in args) + tuple((k, _part(v)) for k, v in sorted(kwargs.items()))
        found = store.get(key)
        if found is not None:
            store.move_to_end(key)
            return found
        result = _frozen(fn(*args, **kwargs))
        store[key] = result
        while len(store) > MAX_ENTRIES:
            store.popitem(last=False)
        return result

    wrapper.cache_clear = store.clear
    wrapper.cache_size = lambda: len(store)
    return wrapper
