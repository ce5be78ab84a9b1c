"""Run a property again through the examples of an earlier run, without hypothesis's overhead.

Hypothesis spends about half a millisecond on each example before the
property sees it (its engine, the random state it guards, the draws): as
much as the checks themselves.  Yet with a fixed seed a run is determined by
what the property does: hypothesis picks each next example (to generate, or
to shrink a failure) from what the earlier examples drew and how each ended,
and from nothing else.  So the engine keeps every run it completes (a
`Recording`: each example's draws and its ending: finished, or failed with
an exception of a given type raised at a given place) under a key that fixes
everything the draws can depend on: the kind, the property, the profile, the
seed and the target's declarations.  The next target with the same key is
first run through those examples directly (`Replay`): each example is run on
the recorded draws, and the recordings whose ending at that step matches
the target's stay in play.  When one is followed to its end, hypothesis
would have run exactly these examples and reached exactly this outcome
(the last example's exception, for a failure: its shrunk counterexample):
the result is the same, only cheaper.  When the target asks for another draw
or ends an example in a way no recording did, the replay is abandoned, and
the property runs under hypothesis as if nothing had been kept.

What gains: grading (many submissions of the same class in one process,
many of them with the same bugs), the self-test and the suite's own tests.
One `attnspec check` of one target has nothing to replay.  Drawn values are
immutable (integers, strings, frozen cases), so examples can be shared;
recordings are plain data, so they can be sent between processes (`export`,
`absorb`).

A module whose outputs depend on calls made to *other* instances (global
state: itself a bug, IFACE-4) may run a failing example twice, once in the
abandoned replay and once under hypothesis, and so get another
counterexample than in a fresh process; a module without such state gets
the same result either way (tests/test_replay.py).
"""

import collections
import traceback
from dataclasses import dataclass

from .strategies import Case

MAX_RECORDINGS = 4096  # keys
MAX_VARIANTS = 8  # recordings per key: the passing run, if any, and the failing ones seen most recently
IMMUTABLE = (int, float, str, bool, bytes, type(None), Case)
# what a target is called, and the hardware it is run as on (attnspec.emulation), never change what is drawn
_IGNORED_INFO = ("name", "signature", "emulation")

_kept = collections.OrderedDict()
_enabled = True


STOPPED = ("stopped",)  # the ending of an example hypothesis stopped inside a draw (an overrun while shrinking)


class Stopped(BaseException):
    """Raised in a replayed example where hypothesis stopped the recorded one, at the same draw."""


class Diverged(BaseException):
    """The replayed example asked for another draw than the recording holds.

    A BaseException, like hypothesis's own StopTest, so that no `except
    Exception` in a property can swallow it.
    """


@dataclass(frozen=True)
class Recording:
    """One completed run: for each example, ((label, strategy repr, value), ...) and its ending.

    An ending is None (the example finished: passed, or not applicable),
    STOPPED (hypothesis ended it in its last draw: the shrinker tried fewer
    choices than the property draws), or the `signature` of the exception it
    raised.
    """

    examples: tuple

    @property
    def failed(self):
        return bool(self.examples) and self.examples[-1][1] not in (None, STOPPED)


def signature(exc):
    """An exception's type and the places it was raised from, its causes' too.

    Equal signatures imply what hypothesis compares to tell failures apart
    (the type and the place raised, with the cause and context): two
    examples ending with equal signatures are the same to its shrinker.
    """
    parts = []
    while exc is not None and len(parts) < 8:
        frames = tuple((f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__))
        parts.append((type(exc).__module__, type(exc).__qualname__, frames))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return tuple(parts)


def key(prop, kind, profile, seed, max_examples, info):
    """Everything a property's draws can depend on, as a hashable value."""
    declared = tuple(sorted((k, repr(v)) for k, v in info.items() if k not in _IGNORED_INFO))
    return (kind, prop.name, profile, seed, max_examples, declared)


def lookup(k):
    """The recordings kept under `k` (a list, the most recent last), or None."""
    if not _enabled:
        return None
    found = _kept.get(k)
    if found is not None:
        _kept.move_to_end(k)
    return found


def keep(k, recording):
    if not _enabled:
        return
    variants = [r for r in _kept.get(k, ()) if r != recording] + [recording]
    passing = [r for r in variants if not r.failed][-1:]  # a run without failure is the same for every correct target
    failing = [r for r in variants if r.failed]
    room = max(0, MAX_VARIANTS - len(passing))
    _kept[k] = passing + failing[len(failing) - room:] if room < len(failing) else passing + failing
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
    """Every recording, as a list of (key, recording) that pickles (to hand to another process)."""
    return [(k, r) for k, variants in _kept.items() for r in variants]


def absorb(items):
    for k, recording in items:
        keep(k, recording)


class Recorder:
    """Stands in for hypothesis's `data` object: draws through it and writes down what came out."""

    def __init__(self, data):
        self.data = data
        self.draws = []
        self.shareable = True
        self.stopped = False  # hypothesis ended the example inside a draw

    def draw(self, strategy, label=None):
        try:
            value = self.data.draw(strategy, label=label)
        except Exception:
            raise
        except BaseException:  # hypothesis's StopTest: an overrun or a rejected value
            self.stopped = True
            raise
        self.shareable = self.shareable and isinstance(value, IMMUTABLE)
        self.draws.append((label, repr(strategy), value))
        return value


class Replayer:
    """Stands in for `data` during a replay: answers each draw from the recording, or raises Diverged.

    One draw past a recording that ended STOPPED raises Stopped instead, as
    hypothesis stopped the recorded example there.
    """

    def __init__(self, draws, stops=False):
        self.draws = draws
        self.stops = stops
        self.used = 0
        self.stopped = False

    def draw(self, strategy, label=None):
        if self.used >= len(self.draws):
            if self.stops:
                self.stopped = True
                raise Stopped
            raise Diverged
        want_label, want_strategy, value = self.draws[self.used]
        if label != want_label or repr(strategy) != want_strategy:
            raise Diverged
        self.used += 1
        return value

    @property
    def finished(self):
        return self.used == len(self.draws)


class Replay:
    """Walks the recordings of one key in step with a target: which examples to run, and when it is over.

    All recordings that agree so far hold the same next example (the same
    history makes hypothesis pick the same one); `step` runs it and keeps the
    recordings whose ending matches.
    """

    def __init__(self, recordings):
        self.alive = list(recordings)
        self.step = 0

    def next_draws(self):
        """The next example's draws and whether it may stop in a draw; None when the run is over.

        Raises Diverged when the recordings disagree.
        """
        more = [r for r in self.alive if len(r.examples) > self.step]
        if len(more) != len(self.alive) and more:
            raise Diverged  # some end here and some go on: cannot happen with the same history
        if not more:
            return None
        draws = more[0].examples[self.step][0]
        if any(r.examples[self.step][0] != draws for r in more[1:]):
            raise Diverged
        return draws, any(r.examples[self.step][1] == STOPPED for r in more)

    def ended(self, ending):
        """Keep the recordings whose example at this step ended as `ending`; Diverged when none did."""
        self.alive = [r for r in self.alive if r.examples[self.step][1] == ending]
        self.step += 1
        if not self.alive:
            raise Diverged
