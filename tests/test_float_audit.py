"""No verdict depends on the machine: the code that judges never compares floats by bits or a fixed epsilon.

A static audit of the verdict path (the properties, the context, the error
model, the assertions, the diagnosis): no np.unique / rounding / array_equal /
allclose / torch.equal on numbers, and no small float literal inside a
comparison or a max/min (a hand-picked epsilon).  Bounds come from
`attnspec.tolerance`.  Exact comparisons with 0 stay allowed where exactness
is the point: an input that must not be written to (IFACE-3), a gradient that
is None or exactly zero (IFACE-5).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "conformance"
VERDICT_PATH = sorted((ROOT / "properties").glob("*.py")) + [ROOT / n for n in ("context.py", "tolerance.py", "assertions.py", "diagnosis.py", "baseline.py")]
FORBIDDEN_CALLS = {"unique", "round", "around", "array_equal", "array_equiv", "allclose", "isclose", "equal", "assert_allclose", "assert_array_equal"}
SMALL = 1e-2


def _name(func):
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _small_literals(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, float) and 0 < abs(n.value) < SMALL]


def findings(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in FORBIDDEN_CALLS:
            found.append(f"{path.name}:{node.lineno}: {_name(node.func)}()")
        if isinstance(node, ast.Compare) or (isinstance(node, ast.Call) and _name(node.func) in ("max", "min", "maximum", "minimum")):
            for value in _small_literals(node):
                found.append(f"{path.name}:{node.lineno}: literal {value} in a comparison")
    return found


@pytest.mark.parametrize("path", VERDICT_PATH, ids=lambda p: p.name)
def test_no_bitwise_rounding_or_fixed_epsilon_comparisons(path):
    assert not findings(path), "compare through attnspec.tolerance, not by bits or a fixed epsilon:\n" + "\n".join(findings(path))


def test_the_audit_finds_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nk = len(np.unique(np.round(y, 5), axis=0))\nok = err < 1e-6\nm = max(tol, 1e-9)\n")
    got = findings(bad)
    assert any("unique" in f for f in got) and any("round" in f for f in got)
    assert sum("literal" in f for f in got) == 2
