"""Jupyter notebooks: `attnspec check NB.ipynb[:Name]`, grading .ipynb submissions, and the notebook view of results.

Fixture notebooks are written with nbformat into tmp_path: a markdown cell,
magics, shell lines and help requests around a correct MultiHeadAttention.
"""

import csv
import fcntl
import json
import pathlib
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import attnspec
from attnspec import notebook
from attnspec.cli import main
from attnspec.grading.grade import discover, scan_imports
from attnspec.results import Result, Results
from attnspec.selftest import discover as discover_entries
from attnspec.targets import TargetError

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORRECT = (ROOT / "tests" / "hostile" / "correct_mha.py").read_text()
BUGGY = (ROOT / "tests" / "zoo" / "m02_scale_none.py").read_text()
RUBRIC = ROOT / "tests" / "hostile" / "rubric.toml"
FAST = ["--profile", "quick", "--seed", "0", "--only", "SHAPE-1,CAUSAL-1,SCALE-1"]
FULL = 12.0  # the test rubric's total

IPYTHON_CELL = """%matplotlib inline
!pip install torch
import torch
files = !ls
percent = 7 % 3
text = '''
%not a magic: inside a string
!nor this
'''
torch?
"""


def write(path, *cells):
    """A notebook at `path`: strings are code cells, ("md", text) markdown cells."""
    nb = new_notebook(
        cells=[new_markdown_cell(c[1]) if isinstance(c, tuple) else new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def chapter(tmp_path):
    """Cell 1 markdown, 2 IPython lines, 3 %%bash (skipped), 4 the class, 5 %%time demo, 6 %%timeit (skipped)."""
    return write(
        tmp_path / "ch03.ipynb",
        ("md", "# Chapter 3\nMy attention, with `<b>` in the text."),
        IPYTHON_CELL,
        "%%bash\necho this is not Python",
        CORRECT + "\nfor i in range(2):\n    %time i\n",
        "%%time\nmha = MultiHeadAttention(2, 2, 4, 0.0, 1)\ndisplay(mha)\nmha",
        "%%timeit\nundefined_name_only_timeit_would_see",
    )


# -- notebook -> module -------------------------------------------------------
def test_the_notebook_becomes_one_module_without_ipython_syntax(chapter):
    nb = notebook.convert(str(chapter))
    assert [c.number for c in nb.cells] == [2, 4, 5]
    assert nb.skipped == [(3, "%%bash cell"), (6, "%%timeit cell")]
    source = nb.source
    compile(source, "nb", "exec")  # plain Python now
    for gone in ("%matplotlib", "!pip", "files = !ls", "torch?", "%time i", "%%time", "echo this"):
        assert gone not in source
    assert "percent = 7 % 3" in source  # the modulo operator is not a magic
    assert "%not a magic: inside a string\n!nor this" in source  # strings are left alone
    assert "# %% cell 4\n" in source and source.endswith("display(mha)\nmha\n")  # a bare trailing expression stays
    line = source.splitlines().index("class MultiHeadAttention(nn.Module):") + 1
    assert nb.where(line) == f"cell 4 (line {CORRECT.splitlines().index('class MultiHeadAttention(nn.Module):') + 1})"


def test_a_file_that_is_not_a_python_notebook_is_a_clear_error(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{ not json")
    with pytest.raises(notebook.NotebookError, match="cannot read .* as a notebook"):
        notebook.convert(str(tmp_path / "broken.ipynb"))
    nb = new_notebook(cells=[new_code_cell("x <- 1")], metadata={"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}})
    nbformat.write(nb, str(tmp_path / "r.ipynb"))
    with pytest.raises(notebook.NotebookError, match="R notebook"):
        notebook.convert(str(tmp_path / "r.ipynb"))


# -- attnspec check ---------------------------------------------------------
def test_check_a_notebook_by_file_and_by_class(chapter, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", str(chapter), *FAST, "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["target"] == f"{chapter}:MultiHeadAttention" and result["verdict"] == "conforms"
    assert main(["check", f"{chapter}:MultiHeadAttention", *FAST, "-q"]) == 0
    capsys.readouterr()
    assert main(["check", f"{chapter}:Nope", *FAST]) == 2
    assert "defines: MultiHeadAttention" in capsys.readouterr().err


def test_a_failing_notebook_class_names_the_notebook_in_its_reproduction(tmp_path, capsys):
    nb = write(tmp_path / "buggy.ipynb", ("md", "A bug"), BUGGY)
    assert main(["check", f"{nb}:MultiHeadAttention", *FAST]) == 1
    assert f"reproduce: attnspec check {nb}:MultiHeadAttention" in capsys.readouterr().out


@pytest.mark.parametrize("cell3, why", [
    ("x = 1\nundefined_name + 1", "raised NameError in cell 3 (line 2): name 'undefined_name' is not defined"),
    ("x = 1\ndef f(:\n    pass", "stopped at a SyntaxError in cell 3 (line 2): invalid syntax: def f(:"),
    ("import sys\nsys.exit(4)", "called sys.exit(4) in cell 3 (line 2)"),
    ("def f():\n    return 1 / 0\n\nf()", "raised ZeroDivisionError in cell 3 (line 4, from line 2): division by zero"),
])
def test_an_error_in_cell_3_is_reported_as_cell_3(tmp_path, capsys, cell3, why):
    nb = write(tmp_path / "err.ipynb", ("md", "intro"), "import torch", cell3, CORRECT)
    assert main(["check", str(nb), *FAST]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_command_line_exits_2_without_a_traceback(tmp_path):
    nb = write(tmp_path / "err.ipynb", ("md", "intro"), "import torch", "x = 1\nraise ValueError('no')", CORRECT)
    proc = subprocess.run([sys.executable, "-m", "attnspec", "check", str(nb)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"attnspec: error: cannot load {nb}: importing {nb} raised ValueError in cell 3 "
                                   "(line 2): no")


def test_the_example_notebook_conforms_and_the_gallery_does_not_pick_it_up(capsys):
    example = ROOT / "examples" / "ch03_notebook.ipynb"
    assert main(["check", f"{example}:MultiHeadAttention", *FAST, "-q"]) == 0
    cells = nbformat.read(str(example), as_version=4).cells
    assert {c.cell_type for c in cells} == {"markdown", "code"}
    names = [e.name for e in discover_entries(str(ROOT / "examples"), "gallery")]
    assert names and "ch03_notebook" not in names and all(not n.endswith(".ipynb") for n in names)


# -- attnspec.check in a notebook cell ---------------------------------------
def _load(path, name="MultiHeadAttention"):
    scope = {"__name__": "notebook_cell"}
    exec(compile(pathlib.Path(path).read_text(), str(path), "exec"), scope)
    return scope[name]


def test_check_returns_a_list_of_results_with_a_notebook_view():
    cls = _load(ROOT / "tests" / "zoo" / "m02_scale_none.py")
    results = attnspec.check(cls, profile="quick", only=["SHAPE-1", "SCALE-1"])
    assert isinstance(results, Results) and isinstance(results, list) and len(results) == 1
    (result,) = results
    assert isinstance(result, Result) and results.verdict == result.verdict == "does_not_conform"
    scale = result.clause("SCALE-1")
    assert scale.reproduce == "attnspec.check(MultiHeadAttention, profile='quick', seed=0, only=['SCALE-1'])"
    md, html = results._repr_markdown_(), results._repr_html_()
    for view in (md, html):
        assert "SCALE-1" in view and "SHAPE-1" in view and "✗" in view and "✓" in view
        assert "MultiHeadAttention(1, 2, 2, 0.0, num_heads=1)" in view  # the shrunk counterexample
        assert "scores are not scaled" in view  # the diagnosis
        assert "attnspec.check(MultiHeadAttention" in view  # the reproduction
    text = str(results)
    assert "✗ SCALE-1" in text and "reproduce: attnspec.check(" in text and "\033[" not in text


def test_everything_from_the_code_under_test_is_escaped():
    scope = {"__name__": "notebook_cell"}
    exec(BUGGY.replace("    def forward(self, x):\n",
                       "    def forward(self, x):\n        raise ValueError('<script>alert(1)</script> & <img src=x>')\n"), scope)
    (result,) = attnspec.check(scope["MultiHeadAttention"], profile="quick", only=["SHAPE-1", "IFACE-2"])
    assert result.clause("IFACE-2").status == "failed" and result.clause("SHAPE-1").status == "not_checked"
    assert "<script>" in result.clause("IFACE-2").message  # it reached the result...
    for view in (result._repr_html_(), result._repr_markdown_()):
        assert "<script>" not in view and "<img" not in view  # ...and neither view lets it through
        assert view.count("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x&gt;") == 2  # the failure, the note


def test_a_class_without_a_book_name_needs_kind():
    cls = type("MyAttention", (_load(ROOT / "tests" / "hostile" / "correct_mha.py"),), {})
    with pytest.raises(TargetError, match="kind="):
        attnspec.check(cls)
    (result,) = attnspec.check(cls, kind="MultiHeadAttention", profile="quick", only=["SHAPE-1"])
    assert result.kind == "MultiHeadAttention" and result.verdict == "conforms"


def test_a_class_defined_in_main_is_checked_with_kind_from_its_name():
    script = CORRECT + (
        "\nimport attnspec\n"
        "r = attnspec.check(MultiHeadAttention, profile='quick', only=['SHAPE-1', 'CAUSAL-1'])\n"
        "print(MultiHeadAttention.__module__, r.verdict, r[0].kind, '<table>' in r._repr_html_())\n"
    )
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["__main__", "conforms", "MultiHeadAttention", "True"], proc.stderr


# -- attnspec grade -----------------------------------------------------------
def test_discover_and_scan_read_notebooks(tmp_path):
    write(tmp_path / "solo.ipynb", ("md", "x"), "import torch", "import attnspec.reference as ref", CORRECT)
    folder = tmp_path / "folder"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    write(folder / "attention.ipynb", CORRECT)
    write(folder / "scratch.ipynb", "print('no book class here')")
    write(folder / ".ipynb_checkpoints" / "attention-checkpoint.ipynb", CORRECT)
    (tmp_path / "notes.txt").write_text("")
    solo, fold = discover([tmp_path / "solo.ipynb", folder])
    assert (solo.id, solo.files) == ("solo", ["solo.ipynb"]) and fold.files == ["attention.ipynb"]
    assert scan_imports(str(tmp_path), ["solo.ipynb"]) == ["attnspec.reference (solo.ipynb cell 3, line 1)"]
    with pytest.raises(Exception, match=r"\.ipynb notebook"):
        discover([tmp_path / "notes.txt"])


def test_grading_notebook_submissions_end_to_end(tmp_path, tmp_path_factory):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(subs / "good.ipynb", ("md", "# mine"), IPYTHON_CELL, "%%bash\nexit 1", CORRECT, "mha = MultiHeadAttention(2, 2, 4, 0.0, 1)\nmha")
    (subs / "folder").mkdir()
    write(subs / "folder" / "attention.ipynb", ("md", "buggy"), BUGGY)
    write(subs / "flagged.ipynb", ("md", "x"), "import torch", "from attnspec.reference.multihead import MultiHeadAttention")
    write(subs / "broken.ipynb", ("md", "x"), "import torch", CORRECT + "\nraise RuntimeError('boom')")
    cmd = [sys.executable, "-m", "attnspec.grading.cli", "grade", *(str(subs / s) for s in
           ("good.ipynb", "folder", "flagged.ipynb", "broken.ipynb")), "--out", str(tmp_path / "out"), "--rubric", str(RUBRIC)]
    # workers get uids UID_BASE + index: test_grading_batch's leftover-process check waits for this lock
    with open(tmp_path_factory.getbasetemp().parent / "grading-uids.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    rows = {r["submission"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    records = {p.stem: json.loads(p.read_text()) for p in (out / "submissions").glob("*.json")}
    assert rows["good"]["status"] == "completed" and float(rows["good"]["score"]) == FULL, records["good"]["classes"]
    assert records["folder"]["submission"]["files"] == ["attention.ipynb"]
    scale = {c["id"]: c["status"] for c in records["folder"]["classes"][0]["result"]["clauses"]}["SCALE-1"]
    assert rows["folder"]["status"] == "completed" and float(rows["folder"]["score"]) < FULL and scale == "failed"
    assert rows["flagged"]["status"] == "flagged" and float(rows["flagged"]["score"]) == 0
    assert "attnspec.reference.multihead (flagged.ipynb cell 3, line 1) [source]" in records["flagged"]["flags"]
    assert "flagged.ipynb cell 3, line 1" in (out / "feedback" / "flagged.md").read_text()
    assert rows["broken"]["status"] == "import error"
    assert "raised RuntimeError in cell 3 (line" in records["broken"]["detail"]
    assert "in cell 3 (line" in (out / "feedback" / "broken.md").read_text()
