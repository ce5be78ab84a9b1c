"""The executable properties, grouped by clause family, and their registry.

A property is a small function of a `Context`; it cites the clauses it
judges, names the kinds it applies to, and asks the candidate only what it
needs.  `REGISTRY` lists them in the order the engine runs them: gates
first (if the module cannot be called at all, nothing else is checked).
"""

from dataclasses import dataclass

REGISTRY = []


@dataclass(frozen=True)
class Property:
    name: str
    fn: object
    clauses: tuple  # every clause this property judges
    kinds: tuple
    examples: float = 1.0  # multiplier of the profile's example budget
    gate: str = ""  # "call" or "weights": failing it makes dependants not_checked
    needs: tuple = ()  # gates this property depends on


def prop(*, clauses, kinds, examples=1.0, gate="", needs=("call",)):
    """Register a property.  `clauses` may be a tuple or a dict kind -> tuple."""

    def register(fn):
        for kind in kinds:
            cited = clauses[kind] if isinstance(clauses, dict) else clauses
            REGISTRY.append(
                Property(
                    name=fn.__name__,
                    fn=fn,
                    clauses=tuple(cited),
                    kinds=(kind,),
                    examples=examples,
                    gate=gate,
                    needs=() if gate == "call" else tuple(needs),
                )
            )
        return fn

    return register


def properties_for(kind):
    _load()
    return [p for p in REGISTRY if kind in p.kinds]


def _load():
    from . import (  # noqa: F401  (importing registers)
        interface,
        shapes,
        causal,
        softmax,
        agreement,
        heads,
        parameters,
        dropout,
        numerics,
    )
