"""Shapes, dtypes, devices, strides and batch independence (topic 1)."""

import numpy as np
from hypothesis import strategies as st

from ..assertions import ClauseViolation, assert_dtype, assert_shape
from ..candidate import CandidateError
from ..config import CAUSAL_KINDS, KINDS
from ..context import runs_at_full_length
from . import prop


def expected_shape(case):
    return case.input_shape[:-1] + (case.cfg.out_features,)


def _ordinary(case):
    """The same kind of case with no size equal to 1 (to tell SHAPE-4 from a general bug)."""
    heads = 2 if case.cfg.heads > 1 or case.cfg.kind == "MultiHeadAttention" else 1
    d_out = heads * 2 if case.cfg.kind == "MultiHeadAttention" else 2
    d_in = d_out if case.cfg.kind == "simplified_self_attention" else 3
    slack = case.cfg.context_length - case.num_tokens if case.cfg.batched else 0
    cfg = case.cfg.with_(d_in=d_in, d_out=d_out, num_heads=heads, context_length=3 + slack)
    return case.with_(cfg=cfg, batch=2 if cfg.batched else 1, num_tokens=3)


def _call(ctx, case):
    """(output shape, None) or (None, CandidateError) for the case's input."""
    try:
        return ctx.forward(ctx.build(case.cfg), ctx.inputs(case)).y.shape, None
    except CandidateError as exc:
        if exc.reason != "raised":
            raise
        return None, exc


@prop(clauses=("SHAPE-1", "SHAPE-2", "SHAPE-3", "SHAPE-4"), kinds=KINDS, examples=0.6)
def output_has_the_specified_shape(ctx):
    """(batch, num_tokens, d_in) -> (batch, num_tokens, out_features), degenerate sizes included."""
    case = ctx.case(max_batch=2)
    layout = "SHAPE-1" if case.cfg.batched else "SHAPE-2"
    shape, error = _call(ctx, case)
    if error is None and shape == expected_shape(case):
        return
    # a size-1 axis that breaks what works otherwise is SHAPE-4 (a squeeze, a lost axis)
    only_degenerate = False
    if 1 in (case.batch, case.num_tokens, case.cfg.d_in, case.cfg.head_dim):
        other = _ordinary(case)
        shape2, error2 = _call(ctx, other)
        only_degenerate = error2 is None and shape2 == expected_shape(other)
    if error is not None and error.exc_type == "WrongShape":
        violation = ClauseViolation(("SHAPE-4",) if only_degenerate else (layout, "SHAPE-3"), f"the module {error.message}")
        violation.crash = error.exc_type
        raise violation
    if error is not None:
        cited = ("SHAPE-4",) if only_degenerate else (layout,)
        if case.cfg.causal and case.num_tokens < case.cfg.context_length and runs_at_full_length(ctx.cand, case.cfg, case.batch, case.dtype):
            cited = ("CAUSAL-5",)
        violation = ClauseViolation(cited, f"an input of shape {case.input_shape} is rejected: {error.plain()}")
        violation.crash = error.exc_type
        raise violation
    assert_shape(("SHAPE-4",) if only_degenerate else (layout, "SHAPE-3"), "the output", shape, expected_shape(case))


@prop(clauses=("SHAPE-5",), kinds=KINDS, examples=0.2)
def output_dtype_equals_input_dtype(ctx):
    """A float64 (or float32) input gives an output of the same dtype."""
    dtype = ctx.draw(st.sampled_from(ctx.value_dtypes), label="dtype")
    case = ctx.case(dtype=dtype, max_context=4)
    handle = ctx.build(case.cfg, dtype)
    out = ctx.forward(handle, ctx.inputs(case))
    assert_dtype(("SHAPE-5",), "the output", out.dtype, dtype)


@prop(clauses=("SHAPE-6",), kinds=KINDS, examples=0.04)
def output_follows_the_module_device(ctx):
    """On the meta device (a stand-in for a GPU), no tensor is made on the default device."""
    if ctx.profile != "thorough":  # the first meta-device call costs about a second
        ctx.not_applicable("probed with the meta device only in the thorough profile")
    case = ctx.case(max_context=4, full_length=True)
    probe = ctx.cand.device_probe(case.cfg, case.input_shape, "meta")
    if probe["ok"]:
        if probe["device"] != "meta":
            raise ClauseViolation(("SHAPE-6",), f"the output is on {probe['device']} for input on the meta device")
        return
    error = probe["error"]
    if "device" in error.lower() or "meta" in error.lower():
        raise ClauseViolation(
            ("SHAPE-6",),
            f"the module fails when moved to another device: {error} (a tensor is created without device=, "
            "or the mask is a plain attribute instead of a buffer)",
        )
    ctx.not_applicable(f"cannot run on the meta device for a reason unrelated to devices: {error}")


@prop(clauses=("SHAPE-7", "NUM-4"), kinds=KINDS, examples=0.5)
def strided_input_gives_the_same_output(ctx):
    """A transposed or strided view of the same values gives the same output."""
    case = ctx.case()
    layout = ctx.draw(st.sampled_from(["transposed", "strided"]), label="layout")
    x = ctx.inputs(case)
    handle, w, out = ctx.call_loaded(case, x)
    y = out.y
    y2 = ctx.forward(handle, x, layout=layout).y
    bound = 2 * ctx.bound(case.cfg, w, x, case.dtype)
    ctx.expect_invariant(("SHAPE-7",), f"output for a {layout} input vs the contiguous one", y2, y, bound, case.cfg.batched)


@prop(clauses=("SHAPE-8", "NUM-4"), kinds=CAUSAL_KINDS, examples=0.6)
def batch_elements_are_independent(ctx):
    """Each batch element's output equals that element run alone; order follows the batch."""
    case = ctx.case(max_batch=3)
    if case.batch < 2:
        case = case.with_(batch=2)
        ctx.note(case=case)
    ctx.reach("batch > 1")
    x = ctx.inputs(case)
    handle, w, out = ctx.call_loaded(case, x)
    y = out.y
    bound = 2 * ctx.bound(case.cfg, w, x, case.dtype)  # the same values in both calls
    for i in range(case.batch):
        alone = ctx.forward(handle, x[i : i + 1]).y
        ctx.expect_invariant(("SHAPE-8",), f"batch element {i} in the batch vs alone", y[i : i + 1], alone, bound[i : i + 1])
    order = np.arange(case.batch)[::-1]
    flipped = ctx.forward(handle, x[order]).y
    ctx.expect_invariant(("SHAPE-8",), "output of the reversed batch vs the batch's output reversed", flipped, y[order], bound[order])
