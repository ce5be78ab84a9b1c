"""Points per clause, the classes graded, and the worker budgets: the rubric.

The default rubric (`default_rubric.toml`, shipped beside this module) is
overlaid by an instructor's TOML file, so a course file lists only what it
changes.  A clause's points come from `[points.clause]` (an ID or a glob),
else from its level.  The clauses a class is graded on are those the
engine's properties judge for its kind (narrowed by `only`), so the
maximum is the same for every submission, whether or not its class exists.
"""

import fnmatch
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources

from .. import clauses as spec
from ..config import KINDS

LIMIT_KEYS = ("call_timeout_s", "import_timeout_s", "submission_timeout_s", "max_restarts",
              "memory_mb", "cpu_s", "file_mb", "nproc")
PROFILES = ("quick", "default", "thorough")


class RubricError(Exception):
    """The rubric file is missing or invalid (a usage error, exit code 2)."""


# the device probe is not offered to untrusted workers (RemoteCandidate.device_probe)
NOT_JUDGED_IN_GRADING = {"SHAPE-6"}


def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass(frozen=True)
class Rubric:
    data: dict

    @property
    def classes(self):
        return tuple(self.data["classes"])

    @property
    def profile(self):
        return self.data["profile"]

    @property
    def seed(self):
        return int(self.data["seed"])

    @property
    def only(self):
        return tuple(self.data.get("only") or ())

    @property
    def limits(self):
        return dict(self.data["limits"])

    def points(self, clause_id):
        for pattern, value in self.data["points"].get("clause", {}).items():
            if fnmatch.fnmatchcase(clause_id, pattern.upper()):
                return float(value)
        return float(self.data["points"]["level"].get(spec.get(clause_id).level, 0))

    def graded_clauses(self, kind):
        """Clause IDs this rubric grades for `kind`, in spec order."""
        from ..properties import properties_for

        judged = {c for p in properties_for(kind) for c in p.clauses} - NOT_JUDGED_IN_GRADING
        if self.only:
            judged = {c for c in judged if any(fnmatch.fnmatchcase(c, pat.upper()) for pat in self.only)}
        return [c.id for c in spec.all_clauses() if c.id in judged]

    def engine_only(self, kind):
        """The `only=` list for the engine: None when every clause is graded."""
        return self.graded_clauses(kind) if self.only else None

    def max_score(self, kind):
        return sum(self.points(c) for c in self.graded_clauses(kind))

    def total(self):
        return sum(self.max_score(k) for k in self.classes)

    def fingerprint(self):
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()[:16]


def _validate(data, where):
    unknown = [k for k in data.get("classes", []) if k not in KINDS]
    if unknown or not data.get("classes"):
        raise RubricError(f"{where}: `classes` must list some of {', '.join(KINDS)} (got {unknown or 'none'})")
    if data.get("profile") not in PROFILES:
        raise RubricError(f"{where}: `profile` must be one of {', '.join(PROFILES)}")
    if not isinstance(data.get("seed"), int):
        raise RubricError(f"{where}: `seed` must be an integer")
    known = {c.id for c in spec.all_clauses()}
    for pattern in list(data["points"].get("clause", {})) + list(data.get("only") or []):
        if not any(fnmatch.fnmatchcase(c, str(pattern).upper()) for c in known):
            raise RubricError(f"{where}: {pattern!r} matches no clause (see `attnspec list-clauses`)")
    for key, value in data["limits"].items():
        if key not in LIMIT_KEYS or not isinstance(value, (int, float)) or value <= 0 and key != "max_restarts":
            raise RubricError(f"{where}: limits.{key} must be a positive number (keys: {', '.join(LIMIT_KEYS)})")
    for level, value in data["points"]["level"].items():
        if not isinstance(value, (int, float)):
            raise RubricError(f"{where}: points.level.{level} must be a number")


def load(path=None, **overrides):
    """The default rubric, overlaid by the TOML file at `path` and then by `overrides`."""
    text = (resources.files("attnspec.grading") / "default_rubric.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    where = "default rubric"
    if path is not None:
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except OSError as exc:
            raise RubricError(f"cannot read rubric {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RubricError(f"{path} is not valid TOML: {exc}") from None
    data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    _validate(data, where)
    return Rubric(data)
