"""Agreement with the float64 oracle under transferred weights (NUM-1 and the math clauses)."""

from hypothesis import strategies as st

from .. import diagnosis
from ..assertions import ClauseViolation, worst_excess
from ..config import KINDS
from . import prop

_PROJECTIONS = ("QKV-3", "QKV-4", "SCALE-1", "SOFTMAX-2")
MATH = {
    "simplified_self_attention": ("SIMPLE-1", "SIMPLE-2", "SIMPLE-3"),
    "SelfAttention_v1": ("QKV-1", "QKV-5") + _PROJECTIONS,
    "SelfAttention_v2": ("QKV-2",) + _PROJECTIONS,
    "CausalAttention": ("QKV-2",) + _PROJECTIONS + ("CAUSAL-2", "CAUSAL-3", "CAUSAL-4"),
    "MultiHeadAttentionWrapper": ("QKV-2",) + _PROJECTIONS + ("CAUSAL-2", "CAUSAL-3", "CAUSAL-4", "HEAD-1", "HEAD-4"),
    "MultiHeadAttention": ("QKV-2",) + _PROJECTIONS + ("CAUSAL-2", "CAUSAL-3", "CAUSAL-4", "HEAD-4", "HEAD-5", "HEAD-6", "HEAD-7"),
}
# the simplified function has no scale and no projections: its mistakes map to SIMPLE-*
_SIMPLE = {"SCALE-1": "SIMPLE-1", "SOFTMAX-2": "SIMPLE-2"}


@prop(clauses={k: ("NUM-1", "NUM-2", "SHAPE-3") + MATH[k] for k in KINDS}, kinds=KINDS, examples=1.5, needs=("call", "weights"))
def output_agrees_with_the_oracle(ctx):
    """With the canonical weights loaded, the output matches the float64 oracle (NUM-1)."""
    dtype = ctx.draw(st.sampled_from(ctx.value_dtypes), label="dtype")
    case = ctx.case(dtype=dtype)
    cfg = case.cfg
    x = ctx.inputs(case)
    _, w, out = ctx.call_loaded(case, x)
    y = out.y
    golden = ctx.oracle(cfg, w, x)
    allowed = ctx.budget(golden, cfg, w, x, dtype)
    if y.shape != golden.shape:
        raise ClauseViolation(("SHAPE-3",), f"the output has shape {y.shape}, the oracle's is {golden.shape}")
    ratio, err, bound, pos = worst_excess(y, golden, allowed)
    if ratio <= 1.0:
        return
    found = diagnosis.diagnose(cfg, w, x, y, golden, allowed)
    at = f"batch {pos[0]}, position {pos[1]}" if cfg.batched else f"position {pos[0]}"
    numbers = f"|error| {err:.3g} at {at}, allowed {bound:.3g} there ({dtype})"
    if found:
        clauses = []
        for _, cited, _ in found:
            clauses += [_SIMPLE.get(c, c) if cfg.kind == "simplified_self_attention" else c for c in cited]
        sentences = "; or ".join(s for _, _, s in found)
        raise ClauseViolation(tuple(dict.fromkeys(clauses)), f"the output matches attention where {sentences}: {numbers}", positions=pos)
    raise ClauseViolation(
        ("NUM-1",),
        f"the output differs from the float64 oracle beyond the error model and matches no known mistake: {numbers}",
        expected=f"{golden[tuple(pos)]:.6g}", observed=f"{y[tuple(pos)]:.6g}", positions=pos,
    )
