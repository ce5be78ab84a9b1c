"""Numerics (topic 8): finite outputs on large inputs, input gradients, half precision."""

import numpy as np
from hypothesis import strategies as st

from .. import tolerance, weights
from ..assertions import ClauseViolation, assert_close, assert_dtype, assert_finite
from ..config import KINDS, TRAINABLE_KINDS
from ..declarations import PREFIX as DECLARED
from . import prop


@prop(clauses=("NUM-3",), kinds=KINDS, examples=0.4)
def large_inputs_give_finite_outputs(ctx):
    """Inputs up to |x| = 100 (and num_tokens = 1) give finite outputs."""
    case = ctx.case(scales=(30.0, 100.0))
    w = weights.canonical_weights(case.cfg, case.rng(21), case.dtype) if case.cfg.kind != "simplified_self_attention" else None
    x = np.clip(ctx.inputs(case), -100, 100)
    assert_finite(("NUM-3",), "the output", ctx.call_built(case.cfg, x, weights=w)[1].y, case.cfg.batched)


@prop(clauses=("IFACE-7",), kinds=TRAINABLE_KINDS, examples=0.5, needs=("call", "weights"))
def input_gradient_matches_the_oracle(ctx):
    """<grad_x, u> equals the oracle's directional derivative of <g, f(x)> along u."""
    case = ctx.case()
    cfg = case.cfg
    handle, w = ctx.build_loaded(case)
    x = ctx.inputs(case)
    rng = case.rng(31)
    g = rng.standard_normal(x.shape[:-1] + (cfg.out_features,))
    grad = ctx.cand.backward(handle, x, g).grad_x
    ref = ctx.reference_backward(cfg, w, x, g, case.dtype)
    h = 1e-6
    for _direction in range(2):
        u = rng.standard_normal(x.shape)
        exact = (np.sum(g * ctx.oracle(cfg, w, x + h * u)) - np.sum(g * ctx.oracle(cfg, w, x - h * u))) / (2 * h)
        got, base = float(np.sum(grad * u)), float(np.sum(ref * u))
        allowed = tolerance.K * abs(base - exact) + tolerance.gradient_floor(ref, u, case.dtype)
        if not np.isfinite(got) or abs(got - exact) > allowed:
            raise ClauseViolation(
                ("IFACE-7",),
                f"the input gradient disagrees with the oracle: along a random direction it gives {got:.6g}, "
                f"the oracle {exact:.6g} (allowed error {allowed:.3g}); part of the computation is detached or "
                "the backward pass sees different weights than the forward pass",
                expected=f"{exact:.6g}", observed=f"{got:.6g}",
            )


@prop(clauses=("NUM-5",), kinds=KINDS, examples=0.4, needs=("call",))
def half_precision_keeps_dtype_and_accuracy(ctx):
    """float16 / bfloat16: same dtype out, finite, within NUM-1 for scores in range."""
    dtype = ctx.draw(st.sampled_from(["bfloat16", "float16"]), label="dtype")
    declared = ctx.info.get("dtypes", ())
    if ctx.info.get("adapter") != "book" and dtype not in declared:
        ctx.not_applicable(f"{DECLARED} (dtypes = {tuple(declared)}): {dtype} is not among the dtypes the adapter supports")
    case = ctx.case(dtype=dtype, max_context=6)
    cfg = case.cfg
    x = ctx.inputs(case)
    _, w, out = ctx.call_loaded(case, x)
    assert_dtype(("NUM-5",), "the output", out.dtype, dtype)
    assert_finite(("NUM-5",), "the output", out.y, cfg.batched)
    golden = ctx.oracle(cfg, w, x)
    allowed = ctx.budget(golden, cfg, w, x, dtype)
    assert_close(("NUM-5",), f"{dtype} output vs the float64 oracle", out.y, golden, allowed, cfg.batched)
