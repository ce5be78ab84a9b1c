"""Examples that depend on the seed alone, not on which modules happen to be imported.

Recent hypothesis versions (6.170 here) mix into their draws, now and then,
literals read from the source of every "local" module loaded in the process
(the code under test, an editable install of attnspec, a notebook's module):
integers outside -100..100, floats, short strings.  The input seeds the
strategies draw (0..2**16) admit a student's 768 or 1024, so which examples
a seed gives depends on what else was imported:
`attnspec check a.py` and `attnspec check a.py b.py` may try different
examples for `a.py`, the grader (which never imports the submission)
tries others than `attnspec check` on the same file, and an editable install
others than a wheel.  A conformance run must be a function of its seed, so
while the engine runs a property (`seed_only`), the pool of local constants
is empty and the constants cache is the engine's own (so entries computed
with or without local constants never mix between attnspec's runs and a
user's own hypothesis tests in the same process).  Hypothesis's global
constants (0, 1, -1, the float edge cases, ...) stay in use: they are the
same everywhere.

This touches two private names of hypothesis.  Where they do not exist (a
version without local constants) it does nothing; where they are renamed,
tests/test_generation.py sees generation depend on the imported modules
again and fails.
"""

import contextlib

try:
    from hypothesis.internal.cache import LRUCache
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants
except ImportError:  # pragma: no cover - a hypothesis without local constants: nothing to neutralise
    _providers = None

_HOOKS = ("_get_local_constants", "CONSTANTS_CACHE")
_ACTIVE = _providers is not None and all(hasattr(_providers, name) for name in _HOOKS)
if _ACTIVE:
    _own_cache = LRUCache(1024)
    _no_constants = Constants()


def _empty_local_constants():
    return _no_constants


@contextlib.contextmanager
def seed_only():
    """Within the block, hypothesis draws no constants from the source of imported modules."""
    if not _ACTIVE:
        yield
        return
    saved = _providers._get_local_constants, _providers.CONSTANTS_CACHE
    _providers._get_local_constants, _providers.CONSTANTS_CACHE = _empty_local_constants, _own_cache
    try:
        yield
    finally:
        _providers._get_local_constants, _providers.CONSTANTS_CACHE = saved
