"""The preflight stage: a mistake in the glue is exit 2 naming the glue, never the implementation's failure.

And the other direction, which matters as much: no correct adapter and no buggy
implementation is ever stopped by it (the properties judge implementations).
"""

import os
import pathlib
import textwrap

import pytest

from attnspec import preflight
from attnspec.cli import main
from attnspec.selftest import discover
from attnspec.targets import load_target

ROOT = pathlib.Path(__file__).resolve().parent.parent
GALLERY = discover(str(ROOT / "tests" / "gallery"), "gallery") + discover(str(ROOT / "examples"), "gallery")
ZOO = discover(str(ROOT / "tests" / "zoo"), "mutant")

HEADER = """
import torch
import attnspec
from attnspec.reference import MultiHeadAttention as _Book

def book(cfg):
    return _Book(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias)

def by_name(module, w, cfg):
    attnspec.BookAdapter(_Book, "MultiHeadAttention").load(module, w, cfg)
"""


def write(tmp_path, body, name="target.py"):
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


def stopped(path):
    (_, adapter), = load_target(path)
    with pytest.raises(preflight.PreflightError) as info:
        preflight.run(adapter)
    return str(info.value)


def test_a_wrong_call_in_the_adapters_forward_is_the_adapters_fault(tmp_path, capsys):
    path = write(tmp_path, """
        class WrongCall(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, w, cfg)
            def forward(self, module, x): return module(x, x)
    """)
    assert "the adapter's forward is wrong" in stopped(path) and "before the module's own forward ran" in stopped(path)
    assert main(["check", path, "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert "the adapter's forward is wrong" in err and "Traceback" not in err and "IFACE-2" not in err


def test_a_transposed_copy_is_named_with_the_tensor_and_the_layouts(tmp_path):
    path = write(tmp_path, """
        class Transposed(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, {**w, "W_key": w["W_key"].T}, cfg)
    """)
    message = stopped(path)
    assert "the adapter's weight mapping is wrong" in message and "W_key is copied transposed" in message
    assert "W_key (4, 4)" in message and "W_key.weight (4, 4)" in message


def test_swapped_projections_are_named(tmp_path):
    path = write(tmp_path, """
        class Swapped(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, {**w, "W_query": w["W_value"], "W_value": w["W_query"]}, cfg)
    """)
    assert "W_query and W_value are swapped" in stopped(path)


def test_a_load_that_raises_lists_both_layouts(tmp_path):
    path = write(tmp_path, """
        class NoSuchParameter(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg):
                with torch.no_grad():
                    module.qkv.weight.copy_(w["W_query"])
    """)
    message = stopped(path)
    assert "NoSuchParameter.load raised AttributeError" in message
    assert "canonical tensors are W_query (4, 4)" in message and "out_proj.bias (4,)" in message


def test_a_read_that_does_not_give_back_what_went_in_names_each_tensor(tmp_path):
    path = write(tmp_path, """
        class BadRead(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, w, cfg)
            def read(self, module, cfg):
                return {"W_query": module.W_query.weight, "W_key": module.W_key.weight.T,
                        "W_value": module.W_value.weight, "W_out": module.out_proj.weight}
    """)
    message = stopped(path)
    assert "W_key (4, 4) comes back with other values (it matches the transpose" in message
    assert "b_out is missing" in message and "W_query" not in message.split("gives")[1].split("The canonical")[0]


def test_a_correct_read_passes_the_round_trip(tmp_path):
    path = write(tmp_path, """
        class GoodRead(attnspec.Adapter):
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, w, cfg)
            def read(self, module, cfg):
                return {"W_query": module.W_query.weight, "W_key": module.W_key.weight, "W_value": module.W_value.weight,
                        "W_out": module.out_proj.weight, "b_out": module.out_proj.bias}
    """)
    (_, adapter), = load_target(path)
    preflight.run(adapter)  # raises on failure


def test_a_constructor_the_book_call_cannot_bind_to_is_iface_1_and_exit_2(tmp_path, capsys):
    path = tmp_path / "sig.py"
    path.write_text("import torch.nn as nn\n\nclass MultiHeadAttention(nn.Module):\n"
                    "    def __init__(self, d_in, d_out, context_length, num_heads):\n        super().__init__()\n")
    assert main(["check", str(path), "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert "IFACE-1" in err and "(d_in, d_out, context_length, num_heads)" in err and "not checked" not in err


def test_a_constructor_that_raises_inside_is_left_to_the_properties(tmp_path):
    path = tmp_path / "raises.py"
    path.write_text("import torch.nn as nn\n\nclass MultiHeadAttention(nn.Module):\n"
                    "    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):\n"
                    "        raise TypeError('not written yet')\n")
    (_, adapter), = load_target(str(path))
    preflight.run(adapter)  # the class's own code ran: a failure of the implementation, judged by the properties
    assert main(["check", str(path), "--profile", "quick"]) == 1


def test_bad_declarations_are_exit_2(tmp_path):
    path = write(tmp_path, """
        class Declares(attnspec.Adapter):
            skip = {"NOPE-1": "why not"}
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, w, cfg)
    """)
    assert "unknown clause 'NOPE-1'" in stopped(path)
    path = write(tmp_path, """
        class Declares(attnspec.Adapter):
            output_dropout = "resid_dropout"
            def build(self, cfg): return book(cfg)
            def load(self, module, w, cfg): by_name(module, w, cfg)
    """, name="other.py")
    assert "the module has no attribute resid_dropout" in stopped(path)


@pytest.mark.parametrize("entry", [e for e in GALLERY if not e.missing], ids=lambda e: e.name)
def test_every_correct_adapter_passes_preflight(entry):
    for _, adapter in load_target(entry.target):
        try:
            preflight.run(adapter)
        except preflight.PreflightError as exc:
            if "needs a module that is not installed" in str(exc):
                pytest.skip(str(exc))  # Hugging Face's GPT2Attention without transformers: said plainly
            raise


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_no_buggy_implementation_is_stopped_before_the_properties_judge_it(entry):
    for _, adapter in load_target(entry.target):
        try:
            preflight.run(adapter)
        except preflight.PreflightError as exc:
            pytest.fail(f"{entry.name} (bug: {', '.join(entry.clauses)}) was charged to the glue: {exc}")


def test_kind_bogus_lists_the_valid_kinds(capsys):
    assert main(["check", os.fspath(ROOT / "reference" / "multihead.py"), "--kind", "Bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind" in err and "MultiHeadAttentionWrapper" in err and "no book name" not in err
