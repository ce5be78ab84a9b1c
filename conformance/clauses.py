"""The spec's clauses, read from the TOML files shipped in `attnspec.spec`."""

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

LEVELS = ("MUST", "SHOULD", "MAY", "IMPLEMENTATION-DEFINED")


@dataclass(frozen=True)
class Clause:
    id: str
    revision: int
    level: str
    title: str
    text: str
    rationale: str
    mistake: str
    topic: int
    topic_title: str

    @property
    def citation(self):
        return f"{self.id}@{self.revision}"

    @property
    def required(self):
        """A failure of this clause means the target does not conform."""
        return self.level in ("MUST", "IMPLEMENTATION-DEFINED")


@dataclass(frozen=True)
class Topic:
    number: int
    title: str
    intro: str
    clauses: tuple


class UnknownClause(KeyError):
    def __str__(self):
        return f"no clause {self.args[0]!r}; `attnspec spec --list` lists them"


@functools.cache
def topics():
    """Every topic of the spec, in order, with its clauses."""
    folder = resources.files("attnspec.spec") / "clauses"
    found = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        clauses = tuple(
            Clause(
                id=c["id"],
                revision=int(c["revision"]),
                level=c["level"],
                title=c["title"],
                text=c["text"].strip(),
                rationale=c["rationale"].strip(),
                mistake=c["mistake"].strip(),
                topic=int(data["topic"]),
                topic_title=data["title"],
            )
            for c in data["clause"]
        )
        found.append(Topic(int(data["topic"]), data["title"], data.get("intro", "").strip(), clauses))
    return tuple(sorted(found, key=lambda t: t.number))


@functools.cache
def by_id():
    return {c.id: c for t in topics() for c in t.clauses}


def get(clause_id):
    """The clause with this ID (case-insensitive; an `@rev` suffix is ignored)."""
    key = clause_id.split("@")[0].strip().upper()
    try:
        return by_id()[key]
    except KeyError:
        raise UnknownClause(clause_id) from None


def all_clauses():
    return [c for t in topics() for c in t.clauses]
