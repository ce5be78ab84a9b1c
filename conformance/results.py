"""One canonical result per target; every report format is rendered from it."""

import json
import platform
import sys
from dataclasses import asdict, dataclass, field

SCHEMA = "attnspec-result/1"
STATUSES = ("passed", "failed", "error", "skipped", "not_checked")


@dataclass
class ClauseResult:
    """The verdict on one clause for one target."""

    id: str
    status: str  # passed | failed | error | skipped | not_checked
    level: str = "MUST"
    title: str = ""
    message: str = ""  # one plain sentence of diagnosis
    expected: str = ""
    observed: str = ""
    counterexample: dict = None  # the shrunk case: config, shapes, seed, positions
    reproduce: str = ""
    properties: list = field(default_factory=list)  # names of the properties that judged it
    examples: int = 0  # generated examples that reached this clause
    duration_s: float = 0.0
    influence: dict = None  # causal failures: which input tokens change which outputs (attnspec.influence)


@dataclass
class Result:
    target: str
    kind: str
    verdict: str  # conforms | does_not_conform | error
    clauses: list
    seed: int = 0
    profile: str = "default"
    tool: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    declarations: dict = field(default_factory=dict)
    reach: dict = field(default_factory=dict)  # condition -> examples that reached it
    isolation: dict = None
    status: str = "completed"  # completed | submission_error | timeout | crashed | grader_error
    duration_s: float = 0.0
    schema: str = SCHEMA

    def clause(self, clause_id):
        for c in self.clauses:
            if c.id == clause_id:
                return c
        return None

    @property
    def failed(self):
        return [c for c in self.clauses if c.status in ("failed", "error")]

    def __str__(self):  # the terminal report, without colour
        from .report import render_text

        return render_text(self)

    def _repr_markdown_(self):  # Jupyter: the report as Markdown (everything from the code escaped)
        from .report import render_markdown

        return render_markdown(self)

    def _repr_html_(self):
        from .report import render_html

        return render_html(self)

    def _repr_pretty_(self, p, cycle):  # IPython's text view
        p.text(str(self))

    def to_dict(self):
        return asdict(self)

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), sort_keys=False, default=str, **kw)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["clauses"] = [ClauseResult(**c) for c in data.get("clauses", [])]
        return cls(**data)


class Results(list):
    """What `attnspec.check` returns: a plain list of `Result`, one per object checked.

    A list (indexing, iteration, len) for backward compatibility; in a notebook
    it shows as a report (`_repr_html_`, `_repr_markdown_`), `print()` gives
    the terminal report, and `verdict` is the overall verdict.
    """

    @property
    def verdict(self):
        verdicts = {r.verdict for r in self}
        return next((v for v in ("does_not_conform", "error") if v in verdicts), "conforms")

    def __str__(self):
        return "\n\n".join(str(r) for r in self)

    def _repr_markdown_(self):
        return "\n".join(r._repr_markdown_() for r in self)

    def _repr_html_(self):
        return "".join(r._repr_html_() for r in self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def environment():
    import hypothesis
    import numpy

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "hypothesis": hypothesis.__version__,
    }
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return env


def verdict_of(clauses):
    """conforms unless a required clause failed; `error` when the suite could not judge."""
    if any(c.status == "failed" and c.level in ("MUST", "IMPLEMENTATION-DEFINED") for c in clauses):
        return "does_not_conform"
    if any(c.status == "error" for c in clauses):
        return "error"
    return "conforms"
