"""The mutant zoo: every realistic bug in tests/zoo must be rejected, and rejected for a reason it is tagged with.

Each mutant is checked in this process on the properties that judge its tagged
clauses (`focused`), which is what "rejected by one of its CLAUSES" needs and
keeps the zoo inside CI's time budget.  `attnspec selftest` runs the full
suite on every mutant and prints which clauses kill what.
Set ATTNSPEC_ZOO_PROFILE (quick/default/thorough) or ATTNSPEC_ZOO_FULL=1 to change that.
"""

import ast
import os

import pytest

from attnspec import KINDS
from attnspec import clauses as spec
from attnspec.emulation import EMULATIONS
from attnspec.selftest import check_in_process, discover

ZOO = os.path.join(os.path.dirname(__file__), "zoo")
MUTANTS = discover(ZOO, "mutant")
PROFILE = os.environ.get("ATTNSPEC_ZOO_PROFILE", "default")
FOCUSED = os.environ.get("ATTNSPEC_ZOO_FULL", "") != "1"


def _code_without_metadata(path):
    """The module's AST without its docstring and CLAUSES: what the mutant computes."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(getattr(n, "value", None), ast.Constant))]
    body = [n for n in body if not (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "CLAUSES" for t in n.targets))]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def test_the_zoo_has_at_least_48_mutants():
    assert len(MUTANTS) >= 48, f"only {len(MUTANTS)} mutants in {ZOO}"


def test_every_tagged_clause_exists_in_the_spec():
    known = {c.id for c in spec.all_clauses()}
    unknown = {m.name: [c for c in m.clauses if c not in known] for m in MUTANTS}
    unknown = {k: v for k, v in unknown.items() if v}
    assert not unknown, f"CLAUSES name clauses the spec does not have: {unknown}"
    duplicated = {m.name: m.clauses for m in MUTANTS if len(set(m.clauses)) != len(m.clauses)}
    assert not duplicated, f"CLAUSES lists a clause twice: {duplicated}"


def test_every_mutant_is_distinct():
    seen = {}
    for m in MUTANTS:
        code = _code_without_metadata(m.path)
        assert code not in seen, f"{m.name} computes exactly what {seen[code]} computes"
        seen[code] = m.name
    docs = [m.doc for m in MUTANTS]
    assert len(set(docs)) == len(docs), "two mutants share a docstring"


def test_every_mutant_defines_one_book_object_and_says_why():
    for m in MUTANTS:
        tree = ast.parse(open(m.path, encoding="utf-8").read())
        defined = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        assert defined == [m.kind] and m.kind in KINDS, f"{m.name} defines {defined}; a mutant defines exactly one book class or function"
        assert m.doc and "hide" in m.doc, f"{m.name}: the docstring must say what the bug is and which naive test hides it"


# each mutant is also checked as on one other machine, in turn over the zoo: the tolerances that
# keep correct code green on every machine must not open a gap a bug slips through
OTHER = [e for e in EMULATIONS if e != "none"]
PAIRS = [(m, "none") for m in MUTANTS] + [(m, OTHER[i % len(OTHER)]) for i, m in enumerate(MUTANTS)]


@pytest.mark.parametrize(("mutant", "emulation"), PAIRS, ids=[f"{m.name}-{e}" for m, e in PAIRS])
def test_mutant_is_rejected_by_a_tagged_clause(mutant, emulation):
    run = check_in_process(mutant, seed=0, profile=PROFILE, focused=FOCUSED, emulation=emulation)
    assert run.status == "completed", f"{mutant.target} could not be checked: {run.detail}"
    tagged = ", ".join(f"{c} {run.statuses.get(c, 'absent')}" for c in mutant.clauses)
    assert "does_not_conform" in run.verdicts, (
        f"{mutant.name} survived ({emulation}): verdict {run.verdicts}, failed {run.failed or 'nothing'}; its tagged clauses: {tagged}"
    )
    assert run.killed_by(mutant.clauses), (
        f"{mutant.name} was rejected for {run.required_failed}, none of its tagged clauses {mutant.clauses}"
    )
