"""The influence map of causal failures (attnspec.influence): what it measures and where it is shown."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import attnspec
from attnspec import influence, reference
from attnspec.adapter import BookAdapter
from attnspec.candidate import CandidateError, LocalCandidate
from attnspec.cli import main
from attnspec.config import Config
from attnspec.grading import outputs
from attnspec.reference import oracle
from attnspec.results import ClauseResult, Result
from attnspec.strategies import Case

ZOO = Path(__file__).parent / "zoo"
LEAK = str(ZOO / "m22_mask_inverted.py")  # tril(diagonal=-1): sees the future, hides the past
DIAGONAL = str(ZOO / "m16_mask_diagonal_0.py")  # triu(diagonal=0): no token sees itself
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As the engine runs candidates: torch's thread pool only slows these tiny modules down."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _failed(target, clause):
    (result,) = attnspec.check(target, only=[clause], profile="quick", seed=0)
    c = result.clause(clause)
    assert c.status == "failed", c.message
    return result, c


def _text_rows(text):
    """{output position: cell characters} parsed back from to_text."""
    lines = [line.split() for line in text.splitlines() if line.startswith("output ")]
    return {int(words[1]): "".join(words[2 : 2 + len(lines)]) for words in lines}


@pytest.fixture(scope="module")
def leak():
    return _failed(LEAK, "CAUSAL-1")


def test_a_leaking_mask_shows_X_in_the_forbidden_cells(leak):
    _, c = leak
    m = c.influence
    assert m and m["clause"] == "CAUSAL-1" and m["case"] == c.counterexample["case"]
    assert m["leaks"] and all(j > i for i, j in m["leaks"])
    cells = influence.cells(m)
    T = len(cells)
    for i in range(T):
        for j in range(T):
            assert (cells[i][j] == "X") == ([i, j] in m["leaks"])
    text = influence.to_text(m)
    rows = _text_rows(text)
    assert set(rows) == set(range(T))
    for i, j in m["leaks"]:
        assert rows[i][j] == "X", text
    assert "X changed though j > i" in text and "oracle attention weights" in text


def test_the_map_survives_the_json_round_trip(leak):
    result, c = leak
    back = Result.from_dict(json.loads(result.to_json()))
    assert back.clause("CAUSAL-1").influence == json.loads(json.dumps(c.influence))


@pytest.mark.parametrize("kind, recipe", [("MultiHeadAttention", "canonical"), ("CausalAttention", "uniform"),
                                          ("MultiHeadAttentionWrapper", "reinitialised")])
def test_the_reference_shows_no_leak_and_ignores_no_visible_token(leak, kind, recipe):
    _, c = leak
    shrunk = influence.case_from(c.counterexample["case"])
    wide = Case(Config(kind, 5, 6, 10, 0.0, 2, True), batch=2, num_tokens=9, seed=3, scale=3.0)
    cand = LocalCandidate(BookAdapter(getattr(reference, kind), kind))
    for case in ([shrunk] if kind == "MultiHeadAttention" else []) + [wide]:
        m = influence.measure(cand, case, recipe, cand.info)
        assert m["leaks"] == [] and m["ignored"] == [], influence.to_text(m)
        assert all(ch in "#." for row in influence.cells(m) for ch in row)
        assert not any(m["changed"][i][j] for i in range(case.num_tokens) for j in range(i + 1, case.num_tokens))
        assert m["bound"] == "rounding_bound"


def test_a_masked_diagonal_shows_an_exclamation_mark_on_the_diagonal():
    _, c = _failed(DIAGONAL, "CAUSAL-2")
    m = c.influence
    assert m["weights"] == "uniform"  # CAUSAL-2's probe: the query's own influence is taken out
    cells = influence.cells(m)
    assert len(cells) >= 2
    assert cells[0] == "?" * len(cells), "row 0 sees no key: NaN"
    for i in range(1, len(cells)):
        assert cells[i][i] == "!", influence.to_text(m)
        assert set(cells[i][:i]) == {"#"}
    rows = _text_rows(influence.to_text(m))
    assert all(rows[i][i] == "!" for i in range(1, len(cells)))


def test_the_oracle_weights_are_those_its_attention_uses():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    Wq, Wk, Wv = (rng.standard_normal((4, 3)) for _ in range(3))
    bq, bk = rng.standard_normal(4), rng.standard_normal(4)
    a = oracle.attention_weights(x, Wq, Wk, bq, bk, num_heads=2)
    assert a.shape == (2, 2, 5, 5)
    assert np.allclose(a.sum(-1), 1.0) and np.all(np.triu(a[0, 0], 1) == 0.0)
    v = (x @ Wv.T).reshape(2, 5, 2, 2).transpose(0, 2, 1, 3)
    context = (a @ v).transpose(0, 2, 1, 3).reshape(2, 5, 4)
    assert np.allclose(context, oracle.attention(x, Wq, Wk, Wv, bq, bk, num_heads=2), atol=1e-12)


class _Breaks(LocalCandidate):
    """Raises on the n-th forward call (the map's forwards come after the properties')."""

    def __init__(self, error):
        super().__init__(BookAdapter(reference.MultiHeadAttention, "MultiHeadAttention"))
        self.error = error

    def forward(self, handle, x, **kw):
        raise self.error


@pytest.mark.parametrize("error", [CandidateError("forward", "RuntimeError", "boom"), RuntimeError("a bug")])
def test_a_map_that_cannot_be_measured_is_absent_and_changes_nothing(leak, error):
    _, c = leak
    cr = ClauseResult(id="CAUSAL-1", status="failed", counterexample=c.counterexample)
    skipped = ClauseResult(id="SCALE-1", status="failed", counterexample=c.counterexample)
    influence.attach([cr, skipped], _Breaks(error))
    assert cr.influence is None and cr.status == "failed" and skipped.influence is None


def test_only_failed_causal_clauses_get_a_map():
    (result,) = attnspec.check(LEAK, only=["CAUSAL-1", "SCALE-1", "CAUSAL-8"], profile="quick", seed=0)
    assert result.clause("CAUSAL-1").influence is not None
    assert result.clause("SCALE-1").influence is None
    assert result.clause("CAUSAL-8").status != "failed" and result.clause("CAUSAL-8").influence is None


def test_check_writes_a_png_next_to_the_json(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "result.json"
    assert main(["check", LEAK, "--profile", "quick", "--seed", "0", "--only", "CAUSAL-1", "--json", str(out)]) == 1
    png = tmp_path / "result.CAUSAL-1.png"
    assert png.read_bytes().startswith(PNG)
    assert "output 0 #" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["results"][0]["clauses"][0]["influence"]["leaks"]


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError


def test_without_matplotlib_no_png_and_no_error(tmp_path, capsys, no_matplotlib, leak):
    _, c = leak
    assert influence.to_png_bytes(c.influence) is None and not influence.have_matplotlib()
    out = tmp_path / "result.json"
    assert main(["check", LEAK, "--profile", "quick", "--seed", "0", "--only", "CAUSAL-1", "--json", str(out)]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert "output 0 #" in capsys.readouterr().out  # the text map does not need matplotlib


def _record(result):
    return {
        "submission": {"id": "s01", "path": "s01.py", "files": ["s01.py"], "sha256": "0" * 64},
        "tool": result.tool, "rubric": {"profile": "quick", "seed": 0}, "status": "completed", "detail": "",
        "score": 0.0, "max_score": 1.0, "flags": [], "isolation": None, "stdout": "", "stderr": "",
        "classes": [{"kind": result.kind, "status": "completed", "detail": "", "score": 0.0, "max_score": 1.0,
                     "points": {c.id: [0.0, 1.0] for c in result.clauses}, "result": result.to_dict()}],
    }


def test_grading_feedback_shows_the_text_map_and_links_the_png(tmp_path, leak):
    result, c = leak
    outputs.write_submission(str(tmp_path), _record(result))
    md = (tmp_path / "feedback" / "s01.md").read_text()
    assert "which input tokens change which outputs" in md
    assert "\n".join(influence.to_text(c.influence).splitlines()[:3]) in md
    png = tmp_path / "feedback" / "s01.MultiHeadAttention.CAUSAL-1.png"
    if influence.have_matplotlib():
        assert png.read_bytes().startswith(PNG)
        assert "](s01.MultiHeadAttention.CAUSAL-1.png)" in md
    # a regrade where the clause passes removes the stale picture
    passed = _record(result)
    passed["classes"][0]["result"]["clauses"][0].update(status="passed", influence=None)
    outputs.write_submission(str(tmp_path), passed)
    assert not png.exists()
    assert "which input tokens change" not in (tmp_path / "feedback" / "s01.md").read_text()


def test_grading_feedback_without_matplotlib_has_the_text_map_only(tmp_path, no_matplotlib, leak):
    result, _ = leak
    outputs.write_submission(str(tmp_path), _record(result))
    md = (tmp_path / "feedback" / "s01.md").read_text()
    assert "X changed though j > i" in md and ".png" not in md
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["s01.md"]
