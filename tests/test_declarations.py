"""Declared deviations: reported as "not applicable: declared", never silently skipped, never hiding a bug."""

import pathlib
import textwrap

import pytest

import attnspec
from attnspec import declarations
from attnspec.cli import main
from attnspec.report import render_text

ROOT = pathlib.Path(__file__).resolve().parent.parent
DROPOUT = ["DROP-1", "DROP-3", "DROP-5", "DROP-6", "DROP-7"]

SOURCE = '''
import torch
from torch import nn
import attnspec
from attnspec.reference import MultiHeadAttention as _Book


class _NoAttentionDropout(_Book):
    """The book's class with its attention dropout removed, as litgpt hard-codes dropout_p=0."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.dropout = nn.Identity()


class _OutputDropout(_Book):
    """The book's class with an extra dropout on the output, as nanoGPT's resid_dropout."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias=qkv_bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.resid_dropout(super().forward(x))


class _Base(attnspec.Adapter):
    cls = _Book

    def build(self, cfg):
        return self.cls(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias)

    def load(self, module, w, cfg):
        attnspec.BookAdapter(_Book, "MultiHeadAttention").load(module, w, cfg)


class NoDropoutDeclared(_Base):
    cls = _NoAttentionDropout
    attention_dropout = False


class NoDropoutUndeclared(_Base):
    cls = _NoAttentionDropout


class OutputDropoutDeclared(_Base):
    cls = _OutputDropout
    output_dropout = "resid_dropout"


class OutputDropoutUndeclared(_Base):
    cls = _OutputDropout


class OutputDropoutUnswitchable(_Base):
    cls = _OutputDropout
    output_dropout = True


class SkipsDeviceClause(_Base):
    skip = {"SHAPE-6": "a CPU-only kernel"}
'''


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    path = tmp_path_factory.mktemp("declared") / "declared.py"
    path.write_text(SOURCE)
    return str(path)


def check(targets, name, only):
    (result,) = attnspec.check(f"{targets}:{name}", profile="quick", seed=0, only=only)
    return result, {c.id: c for c in result.clauses}


def test_no_attention_dropout_declared_is_reported_not_skipped_silently(targets):
    result, by_id = check(targets, "NoDropoutDeclared", DROPOUT + ["DROP-2", "DROP-4"])
    assert result.verdict == "conforms"
    for cid in DROPOUT:
        assert by_id[cid].status == "skipped" and by_id[cid].message.startswith("not applicable: declared (attention_dropout = False)")
    assert by_id["DROP-2"].status == "passed" and by_id["DROP-4"].status == "passed"  # still hold without dropout
    text = render_text(result)  # the short report shows declared lines; hides only what the kind never has
    assert text.count("not applicable: declared") == len(DROPOUT)
    assert "not applicable: declared (attention_dropout = False)" in result._repr_markdown_()
    assert result.declarations["attention_dropout"] is False


def test_the_same_module_undeclared_fails_dropout(targets):
    result, by_id = check(targets, "NoDropoutUndeclared", ["DROP-7"])
    assert result.verdict == "does_not_conform" and by_id["DROP-7"].status == "failed"


def test_a_declared_output_dropout_is_switched_off_and_attention_dropout_still_checked(targets):
    result, by_id = check(targets, "OutputDropoutDeclared", DROPOUT)
    assert result.verdict == "conforms", render_text(result)
    assert all(by_id[c].status == "passed" for c in ("DROP-1", "DROP-5", "DROP-7")), render_text(result)


def test_an_undeclared_output_dropout_fails_drop_1(targets):
    result, by_id = check(targets, "OutputDropoutUndeclared", ["DROP-1"])
    assert by_id["DROP-1"].status == "failed", render_text(result)


def test_an_output_dropout_that_cannot_be_switched_off_declares_the_dropout_clauses(targets):
    result, by_id = check(targets, "OutputDropoutUnswitchable", DROPOUT)
    assert all(by_id[c].message.startswith("not applicable: declared (output_dropout = True)") for c in DROPOUT)


def test_an_adapters_own_skip_is_reported_with_its_reason(targets):
    result, by_id = check(targets, "SkipsDeviceClause", ["SHAPE-6", "SHAPE-1"])
    assert by_id["SHAPE-6"].message == "not applicable: declared by the adapter: a CPU-only kernel"
    assert by_id["SHAPE-1"].status == "passed"


def test_skip_on_the_command_line(capsys):
    target = f"{ROOT}/tests/fixtures/no_mask.py:MultiHeadAttention"
    assert main(["check", target, "--profile", "quick", "--only", "CAUSAL-1,SHAPE-1", "--skip", "CAUSAL-1"]) == 0
    out = capsys.readouterr().out
    assert "not applicable: declared by the user (skip CAUSAL-1)" in out
    assert main(["check", target, "--profile", "quick", "--skip", "NOPE-2"]) == 2
    assert "--skip" in capsys.readouterr().err


def test_only_never_hides_a_failed_gate(tmp_path):
    path = tmp_path / "pair.py"
    path.write_text(textwrap.dedent('''
        from attnspec.reference import MultiHeadAttention as _Book

        class MultiHeadAttention(_Book):
            def forward(self, x):
                return super().forward(x), None
    '''))
    (result,) = attnspec.check(f"{path}:MultiHeadAttention", profile="quick", only=["SHAPE-1"])
    by_id = {c.id: c for c in result.clauses}
    assert result.verdict == "does_not_conform" and by_id["IFACE-2"].status == "failed"
    assert by_id["SHAPE-1"].status == "not_checked"


def test_declared_skips_validates_what_it_is_given():
    assert set(declarations.declared_skips({"attention_dropout": False})) == set(DROPOUT)
    assert declarations.declared_skips({}, skip=["causal-1"]) == {"CAUSAL-1": "not applicable: declared by the user (skip causal-1)"}
    with pytest.raises(declarations.DeclarationError, match="attnspec spec --list"):
        declarations.declared_skips({"skip": {"CAUSAL-99": "x"}})
    with pytest.raises(declarations.DeclarationError, match="attribute path"):
        declarations.declared_skips({"output_dropout": 0.1})
