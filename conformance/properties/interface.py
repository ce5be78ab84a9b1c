"""Interface clauses: signatures, return type, purity, state, gradients, the mask."""

import numpy as np

from .. import weights
from ..assertions import ClauseViolation
from ..candidate import CandidateError
from ..config import CAUSAL_KINDS, KINDS, TRAINABLE_KINDS
from . import prop

BOOK_SIGNATURES = {
    "simplified_self_attention": ["inputs"],
    "SelfAttention_v1": ["d_in", "d_out"],
    "SelfAttention_v2": ["d_in", "d_out", "qkv_bias=False"],
    "CausalAttention": ["d_in", "d_out", "context_length", "dropout", "qkv_bias=False"],
    "MultiHeadAttentionWrapper": ["d_in", "d_out", "context_length", "dropout", "num_heads", "qkv_bias=False"],
    "MultiHeadAttention": ["d_in", "d_out", "context_length", "dropout", "num_heads", "qkv_bias=False"],
}


@prop(clauses=("IFACE-2",), kinds=KINDS, gate="call", examples=0.12)
def returns_a_plain_tensor(ctx):
    """forward(x) takes one tensor and returns a plain torch.Tensor.

    The gate uses the most ordinary configuration (d_in == d_out, one head,
    num_tokens == context_length, batch 1): a module that fails even there
    cannot be judged on anything else.
    """
    case = ctx.case(max_context=3, max_heads=1, max_head_dim=3, max_batch=1, full_length=True, qkv_bias=(False,), square_only=True)
    try:
        handle = ctx.build(case.cfg)
        ctx.cand.forward(handle, ctx.inputs(case))  # the type only: shapes are SHAPE-3's business
    except CandidateError as exc:
        raise ClauseViolation(("IFACE-2",), exc.plain(), expected="a plain torch.Tensor", observed=exc.exc_type) from None


@prop(clauses=("IFACE-8",), kinds=TRAINABLE_KINDS, gate="weights", examples=0.12)
def weights_can_be_transferred(ctx):
    """The canonical weights can be copied into the module by the book's parameter names."""
    case = ctx.case(max_context=3, max_batch=1)
    try:
        ctx.build_loaded(case)
    except CandidateError as exc:
        raise ClauseViolation(("IFACE-8",), exc.message if exc.reason == "mapping" else exc.plain()) from None


def _parameters(signature):
    """['d_in', 'qkv_bias=False', ...] from a signature string like '(d_in, qkv_bias=False)'."""
    body = signature.strip()[1:-1]
    out = []
    for part in [p.strip() for p in body.split(",") if p.strip()]:
        name, _, default = part.partition("=")
        name = name.split(":")[0].strip()
        if name in ("*", "/") or name.startswith("*"):
            continue
        out.append(f"{name}={default.strip()}" if default else name)
    return out


@prop(clauses=("IFACE-1",), kinds=KINDS, examples=0.04, needs=())
def constructor_signature_matches_the_book(ctx):
    """The book's class keeps the book's constructor signature."""
    sig = ctx.info.get("signature")
    if not sig or ctx.info.get("adapter") != "book":
        ctx.not_applicable("the target is an adapter; its constructor is its own")
    got = _parameters(sig)
    want = BOOK_SIGNATURES[ctx.kind]
    if got[: len(want)] != want or any("=" not in p for p in got[len(want):]):
        raise ClauseViolation(
            ("IFACE-1",),
            f"{ctx.kind}{sig} does not match the book's {ctx.kind}({', '.join(want)})",
            expected=f"({', '.join(want)})", observed=sig,
        )


@prop(clauses=("IFACE-3",), kinds=KINDS, examples=0.3)
def input_is_not_modified(ctx):
    """forward never writes into its input tensor."""
    case = ctx.case()
    handle = ctx.build(case.cfg)
    x = ctx.inputs(case)
    out = ctx.forward(handle, x, return_input=True)
    if out.x_after.shape != x.shape:
        raise ClauseViolation(("IFACE-3",), f"the input tensor changed shape in place from {x.shape} to {out.x_after.shape} (an in-place unsqueeze_, view_ or resize_?)")
    changed = np.abs(out.x_after - x)
    if np.any(changed > 0) or np.any(np.isnan(out.x_after)):
        pos = [int(i) for i in np.argwhere(~(changed == 0))[0]]
        raise ClauseViolation(("IFACE-3",), f"the input tensor was modified in place at index {pos}", positions=pos)


@prop(clauses=("IFACE-4",), kinds=KINDS, examples=0.3, needs=("call", "weights"))
def eval_output_does_not_depend_on_earlier_calls(ctx):
    """Calling on x1 then x2 gives for x2 what a fresh module gives; repeated calls agree."""
    case = ctx.case()
    x1, x2 = ctx.inputs(case, salt=1), ctx.inputs(case, salt=2)
    used, w = ctx.build_loaded(case)
    fresh, _ = ctx.build_loaded(case)
    ctx.forward(used, x1)
    after = ctx.forward(used, x2).y
    again = ctx.forward(used, x2).y
    first = ctx.forward(fresh, x2).y
    bound = 2 * ctx.bound(case.cfg, w, x2, case.dtype)
    ctx.expect_invariant(("IFACE-4",), "output for x2 after a call on x1 vs a fresh module", after, first, bound, case.cfg.batched)
    ctx.expect_invariant(("IFACE-4",), "two eval calls on the same input", again, after, bound, case.cfg.batched)


@prop(clauses=("IFACE-5",), kinds=TRAINABLE_KINDS, examples=0.3)
def every_parameter_receives_a_gradient(ctx):
    """Backward reaches every trainable parameter and the input.

    Inputs and weights are drawn mild (scale 1, half the usual sharpness) so
    that no softmax saturates: a saturated softmax (weights exactly 0 and 1
    in the dtype) has an exactly zero gradient for the query and key weights
    in every correct implementation.
    """
    case = ctx.case(min_tokens=2, scales=(1.0,))
    handle, _ = ctx.build_loaded(case, sharpness=0.5)
    x = ctx.inputs(case)
    grad_out = case.rng(7).standard_normal(x.shape[:-1] + (case.cfg.out_features,))
    back = ctx.cand.backward(handle, x, grad_out)
    # None = no gradient at all (unused or detached).  An exactly zero gradient is
    # legitimate for a key bias: softmax ignores a shift shared by a whole row.
    dead = [n for n, g in back.param_grads.items() if g is None or (g == 0.0 and "bias" not in n)]
    if dead:
        raise ClauseViolation(
            ("IFACE-5",),
            f"parameter(s) {', '.join(dead)} received no gradient: they are unused, detached, or not trainable weights",
            expected="a non-zero gradient for every parameter", observed=f"none for {', '.join(dead)}",
        )
    if not np.any(back.grad_x != 0):
        raise ClauseViolation(("IFACE-5",), "the input received no gradient: the computation is detached from x")


def _mask_suspects(ctx, handle, cfg):
    """Names of trainable parameters that look like a stored mask (by name, or context_length x context_length)."""
    T = cfg.context_length
    return [
        p.name for p in ctx.cand.parameters(handle)
        if "mask" in p.name.lower() or "tril" in p.name.lower()
        or (len(p.shape) == 2 and p.shape[0] == p.shape[1] == T and T > max(cfg.d_in, cfg.d_out))
    ]


@prop(clauses=("IFACE-6",), kinds=CAUSAL_KINDS, examples=0.3, needs=("call", "weights"))
def causality_survives_reinitialisation(ctx):
    """Re-initialising every parameter keeps the mask: it is not a parameter.

    Every parameter is overwritten with N(0, 1) values (as a careless
    initialisation would do), then the canonical weights are loaded again:
    whatever the weights do not cover, a mask stored as a parameter above
    all, keeps the noise, and the output's rounding is known.
    """
    case = ctx.case(min_tokens=2)
    handle = ctx.build(case.cfg)
    ctx.cand.reinit(handle, seed=case.seed)
    w = weights.canonical_weights(case.cfg, case.rng(1000), case.dtype)
    ctx.load(handle, w)
    suspects = _mask_suspects(ctx, handle, case.cfg)
    x = ctx.inputs(case)
    t = case.num_tokens - 2
    x2 = x.copy()
    x2[:, t + 1 :] += case.rng(3).standard_normal(x2[:, t + 1 :].shape) * 3
    y1, y2 = ctx.forward(handle, x).y, ctx.forward(handle, x2).y
    named = f" (parameter {', '.join(suspects)} looks like the mask)" if suspects else ""
    mechanism = "the mask was overwritten: it is stored as a parameter" if suspects else "a trainable parameter the canonical weights do not cover decides what attention sees"
    if not np.all(np.isfinite(y1)):
        raise ClauseViolation(("IFACE-6",), f"after re-initialising the parameters the output is not finite: {mechanism}{named}")
    bound = ctx.bound(case.cfg, w, x, case.dtype) + ctx.bound(case.cfg, w, x2, case.dtype)
    try:
        ctx.expect_invariant(("IFACE-6",), f"past outputs after re-initialising the parameters, when tokens after {t} change", y1[:, : t + 1], y2[:, : t + 1], bound[:, : t + 1])
    except ClauseViolation as v:
        v.message = f"re-initialising the parameters made attention see the future: {mechanism}{named}; " + v.message
        raise
    if suspects:
        raise ClauseViolation(("IFACE-6",), f"parameter {', '.join(suspects)} is a trainable tensor shaped like the mask: register it with register_buffer")
