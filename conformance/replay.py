"""Run a property again through the examples it drew when it last passed, without hypothesis's overhead.

Hypothesis spends about half a millisecond on each example before the
property sees it (its engine, the random state it guards, the draws): as
much as the checks themselves.  Yet with a fixed seed a passing run is
determined by what the property drew: hypothesis generates each next example
from the earlier examples' draws and nothing else.  So the engine keeps the
draws of every passing run (a `Recording`), under a key that fixes
everything the draws can depend on: the kind, the property, the profile,
the seed and the target's declarations.  The next target with the same key
is first run through those examples directly (`replay`).  When every example
asks for the same draws, label by label and strategy by strategy, and none
fails, hypothesis would have generated exactly these examples and reached
exactly this outcome: the result is the same, only cheaper.  Anything else
(a violation, a crash, a different draw) abandons the replay, and the
property runs under hypothesis as if nothing had been kept; hypothesis then
finds the failure itself and shrinks it.

What gains: grading (many submissions of the same class in one process),
the self-test and the suite's own tests.  One `attnspec check` of one target
has nothing to replay.  Drawn values are immutable (integers, strings,
frozen cases), so examples can be shared; recordings are plain data, so they
can be sent between processes (`export`, `absorb`).

A module whose outputs depend on calls made to *other* instances (global
state: itself a bug, IFACE-4) may see a failing example twice, once in the
abandoned replay and once under hypothesis, and so get another
counterexample than in a fresh process; a module without such state gets
the same result either way (tests/test_replay.py).
"""

import collections
from dataclasses import dataclass

from .strategies import Case

MAX_RECORDINGS = 4096
IMMUTABLE = (int, float, str, bool, bytes, type(None), Case)
# what a target is called, and the hardware it is run as on (attnspec.emulation), never change what is drawn
_IGNORED_INFO = ("name", "signature", "emulation")

_kept = collections.OrderedDict()
_enabled = True


class Diverged(BaseException):
    """The replayed example asked for another draw than the recording holds.

    A BaseException, like hypothesis's own StopTest, so that no `except
    Exception` in a property can swallow it.
    """


@dataclass(frozen=True)
class Recording:
    """The draws of each example of one passing run: ((label, strategy repr, value), ...) per example."""

    examples: tuple


def key(prop, kind, profile, seed, max_examples, info):
    """Everything a property's draws can depend on, as a hashable value."""
    declared = tuple(sorted((k, repr(v)) for k, v in info.items() if k not in _IGNORED_INFO))
    return (kind, prop.name, profile, seed, max_examples, declared)


def lookup(k):
    if not _enabled:
        return None
    found = _kept.get(k)
    if found is not None:
        _kept.move_to_end(k)
    return found


def keep(k, recording):
    if not _enabled:
        return
    _kept[k] = recording
    _kept.move_to_end(k)
    while len(_kept) > MAX_RECORDINGS:
        _kept.popitem(last=False)


def clear():
    _kept.clear()


def set_enabled(on):
    """Turn keeping and replaying on or off for this process (the suite's tests compare both); returns the old state."""
    global _enabled
    before, _enabled = _enabled, bool(on)
    return before


def export():
    """Every recording, as a list that pickles (to hand to another process)."""
    return list(_kept.items())


def absorb(items):
    for k, recording in items:
        keep(k, recording)


class Recorder:
    """Stands in for hypothesis's `data` object: draws through it and writes down what came out."""

    def __init__(self, data):
        self.data = data
        self.draws = []
        self.shareable = True

    def draw(self, strategy, label=None):
        value = self.data.draw(strategy, label=label)
        self.shareable = self.shareable and isinstance(value, IMMUTABLE)
        self.draws.append((label, repr(strategy), value))
        return value


class Replayer:
    """Stands in for `data` during a replay: answers each draw from the recording, or raises Diverged."""

    def __init__(self, draws):
        self.draws = draws
        self.used = 0

    def draw(self, strategy, label=None):
        if self.used >= len(self.draws):
            raise Diverged
        want_label, want_strategy, value = self.draws[self.used]
        if label != want_label or repr(strategy) != want_strategy:
            raise Diverged
        self.used += 1
        return value

    @property
    def finished(self):
        return self.used == len(self.draws)
