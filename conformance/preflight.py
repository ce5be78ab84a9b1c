"""Before any property runs: can the suite build, load and call the target at all?

A mistake in the glue must not be charged to the implementation: a wrong call
in an adapter's `forward` would otherwise come back as IFACE-2 "the
implementation raised" with every other clause not checked, and weights
copied in the wrong layout as SOFTMAX-1, CAUSAL-3 and NUM-1 failures with no
hint about weights.  `attnspec check` (trusted code, in this process) runs
this stage once per target, on one small configuration, and stops with exit
code 2 and a message that names the culprit:

  - the book's constructor call cannot even bind to the class (IFACE-1), or
    an adapter's `build` raises inside its own code;
  - an adapter's `load` raises, or its optional `read` does not give back the
    canonical weights it was given (names and shapes in the message);
  - the output matches the oracle only when one canonical tensor is handed
    over transposed, with heads reversed, or with two projections swapped:
    the mapping, not the module, is wrong;
  - an adapter's `forward` raises before the module's own forward code runs.

What the implementation itself does wrong is left to the properties (exit 1).
Grading never runs this: a student's class is judged clause by clause.
"""

import inspect

import numpy as np
import torch

from . import tolerance, weights
from .adapter import BookAdapter, FunctionAdapter
from .candidate import DTYPES, fresh_tensor
from .candidate import _short as candidate_short
from .config import Config
from .declarations import DeclarationError, declared_skips, switch_off_output_dropout

BOOK_CALLS = {
    "SelfAttention_v1": "SelfAttention_v1(d_in, d_out)",
    "SelfAttention_v2": "SelfAttention_v2(d_in, d_out, qkv_bias=False)",
    "CausalAttention": "CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=False)",
    "MultiHeadAttentionWrapper": "MultiHeadAttentionWrapper(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)",
    "MultiHeadAttention": "MultiHeadAttention(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)",
}


class PreflightError(Exception):
    """The target cannot be checked as given; the message says what to fix (exit code 2)."""


def probe_config(adapter):
    """One small configuration inside what the adapter declares: two heads where it can, d_in == d_out."""
    kind = adapter.kind
    heads = 2 if kind in ("MultiHeadAttention", "MultiHeadAttentionWrapper") and (adapter.max_heads or 2) >= 2 else 1
    bias = False if False in tuple(adapter.qkv_bias_options) else True
    return Config(kind, d_in=4, d_out=4, context_length=3, dropout=0.0, num_heads=heads, qkv_bias=bias)


def _codes(cls):
    """Code objects of the methods `cls` defines itself or inherits from user code (not torch's)."""
    out = set()
    for klass in inspect.getmro(cls):
        if klass.__module__.split(".")[0] in ("torch", "builtins", "attnspec"):
            continue
        for value in vars(klass).values():
            fn = getattr(value, "__func__", value)
            code = getattr(fn, "__code__", None)
            if code is not None:
                out.add(code)
    return out


def _frames(exc):
    tb, codes = exc.__traceback__, []
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return codes


def _short(exc):
    return f"{type(exc).__name__}: {candidate_short(exc)}"


def _adapter_name(adapter):
    return type(adapter).__name__


def _build(adapter, cfg):
    try:
        module = adapter.build(cfg)
    except Exception as exc:  # noqa: BLE001 - the code under test may raise anything
        frames = _frames(exc)
        if isinstance(adapter, BookAdapter):
            # the class's own code never ran: the book's call does not bind to its signature
            if isinstance(exc, TypeError) and frames and frames[-1] is BookAdapter.build.__code__:
                sig = adapter.signature() or "(unknown)"
                raise PreflightError(
                    f"IFACE-1: {adapter.cls.__name__} cannot be constructed with the book's arguments, "
                    f"{BOOK_CALLS[cfg.kind]}, as {cfg.constructor_call()}: {_short(exc)}. Its signature is {sig}. "
                    "If it implements another class pass --kind; for another constructor write an Adapter (docs/adapters.md)"
                ) from None
            return None  # raised inside the class: the properties report it
        if isinstance(exc, ImportError):
            raise PreflightError(f"{_adapter_name(adapter)}.build needs a module that is not installed: {_short(exc)}") from None
        if frames and frames[-1] in _codes(type(adapter)):
            raise PreflightError(f"the adapter's build is wrong: {_adapter_name(adapter)}.build({cfg.constructor_call()}) raised {_short(exc)}") from None
        return None
    if isinstance(adapter.output_dropout, str):
        try:
            switch_off_output_dropout(module, adapter.output_dropout)
        except DeclarationError as exc:
            raise PreflightError(f"the adapter's declaration is wrong: {exc}") from None
    return module


def _tensors(w, dtype):
    return {k: fresh_tensor(v, dtype) for k, v in w.items()}


def _layout(w):
    return ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in w.items())


def _module_layout(adapter, module):
    try:
        params = adapter.named_parameters(module)
    except Exception:  # noqa: BLE001
        return "unknown"
    return ", ".join(f"{n} {tuple(p.shape)}" for n, p in params) or "none"


def _load(adapter, module, w, cfg, dtype):
    """False when a book class's parameters do not take the weights: that is IFACE-8, the properties say so."""
    try:
        adapter.load(module, _tensors(w, dtype), cfg)
    except Exception as exc:  # noqa: BLE001
        if isinstance(adapter, BookAdapter):
            return False
        raise PreflightError(
            f"the adapter's weight mapping is wrong: {_adapter_name(adapter)}.load raised {_short(exc)}. "
            f"The canonical tensors are {_layout(w)}; the module's parameters are {_module_layout(adapter, module)}"
        ) from None
    return True


def _round_trip(adapter, module, w, cfg, dtype):
    """With `read`, the weights that went in must come back: names, shapes and values."""
    try:
        back = adapter.read(module, cfg)
    except Exception as exc:  # noqa: BLE001
        raise PreflightError(f"the adapter's read is wrong: {_adapter_name(adapter)}.read raised {_short(exc)}") from None
    problems = []
    for name, want in w.items():
        got = back.get(name) if isinstance(back, dict) else None
        if got is None:
            problems.append(f"{name} is missing")
            continue
        got = np.asarray(got.detach().to(torch.float64).cpu() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
        if got.shape != np.shape(want):
            problems.append(f"{name} comes back with shape {got.shape}, it went in as {np.shape(want)}")
            continue
        # the values went in rounded to `dtype`; a copy may round once more, never more than that
        allowed = 2 * tolerance.eps(dtype) * np.abs(want) + tolerance.tiny(dtype)
        if not np.all(np.abs(got - want) <= allowed):
            hint = " (it matches the transpose: a layout transposed one way only)" if got.shape == got.T.shape and np.all(np.abs(got.T - want) <= allowed) else ""
            problems.append(f"{name} {got.shape} comes back with other values{hint}")
    if problems:
        raise PreflightError(
            "the adapter's weight mapping is wrong: loading the canonical weights and reading them back gives "
            f"{'; '.join(problems)}. The canonical tensors are {_layout(w)}; the module's parameters are {_module_layout(adapter, module)}"
        )


def _forward(adapter, module, x, dtype):
    """The output as float64, or None when the module itself raised (the properties report that)."""
    adapter.set_training(module, False)
    try:
        with torch.no_grad():
            out = adapter.forward(module, fresh_tensor(x, dtype))
    except Exception as exc:  # noqa: BLE001
        frames = _frames(exc)
        mine = _codes(type(module)) if not isinstance(adapter, FunctionAdapter) else {module.__code__} if hasattr(module, "__code__") else set()
        if isinstance(adapter, (BookAdapter, FunctionAdapter)) or any(f in mine for f in frames):
            return None  # the implementation's own forward ran and raised: IFACE-2 and friends say so
        raise PreflightError(
            f"the adapter's forward is wrong: {_adapter_name(adapter)}.forward raised {_short(exc)} before the "
            f"module's own forward ran (check the call's arguments)"
        ) from None
    if not isinstance(out, torch.Tensor):
        return None  # IFACE-2 reports what came back
    return out.detach().to(torch.float64).cpu().numpy()


def _variants(w, cfg):
    """(description, weights) for the mapping mistakes an adapter makes: each yields the oracle's output
    when the adapter makes the same mistake once more on the way in."""
    out = []
    for name, v in w.items():
        if v.ndim == 2 and v.shape[0] == v.shape[1]:
            out.append((f"{name} is copied transposed", {**w, name: v.T.copy()}))
    for a, b in (("W_query", "W_key"), ("W_query", "W_value"), ("W_key", "W_value")):
        out.append((f"{a} and {b} are swapped (or the module uses them the other way round)", {**w, a: w[b], b: w[a]}))
    if cfg.heads > 1:
        for name in ("W_query", "W_key", "W_value"):
            rows = w[name].reshape(cfg.heads, -1, w[name].shape[1])[::-1].reshape(w[name].shape)
            out.append((f"the heads of {name} are taken in reverse order", {**w, name: rows.copy()}))
    return out


def run(adapter):
    """Check that the target can be built, loaded and called; PreflightError (exit 2) when the glue is wrong.

    One torch thread, as every check runs (engine.torch_threads)."""
    from .engine import torch_threads

    with torch_threads(1):
        _run(adapter)


def _run(adapter):
    try:
        declared_skips(adapter.describe())
    except DeclarationError as exc:
        raise PreflightError(f"the adapter's declaration is wrong: {exc}") from None
    if adapter.kind == "simplified_self_attention":
        return
    cfg = probe_config(adapter)
    dtype = "float32" if "float32" in adapter.dtypes else adapter.dtypes[0]
    rng = np.random.default_rng(0)
    w = weights.canonical_weights(cfg, rng, dtype)
    x = weights.inputs((2, 3, cfg.d_in) if cfg.batched else (3, cfg.d_in), rng, dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = _build(adapter, cfg)
        if module is None:
            return
        try:
            module = adapter.to_dtype(module, DTYPES[dtype])
        except Exception:  # noqa: BLE001 - a dtype the module refuses: the properties say so
            return
        if not _load(adapter, module, w, cfg, dtype):
            return
        if callable(getattr(adapter, "read", None)):
            _round_trip(adapter, module, w, cfg, dtype)
        y = _forward(adapter, module, x, dtype)
        if y is None or isinstance(adapter, (BookAdapter, FunctionAdapter)):
            return  # a book class's mapping is by name, its own contract (IFACE-8)
        want = weights.oracle_output(cfg, w, x)
        judged = adapter.internal_precision or dtype
        if y.shape != want.shape or _agrees(y, want, cfg, w, x, judged):
            return
        for what, variant in _variants(w, cfg):
            try:
                adapter.load(module, _tensors(variant, dtype), cfg)
                y2 = _forward(adapter, module, x, dtype)
            except Exception:  # noqa: BLE001 - this hypothesis does not even load
                continue
            if y2 is not None and y2.shape == want.shape and _agrees(y2, want, cfg, w, x, judged):
                raise PreflightError(
                    f"the adapter's weight mapping is wrong: the module computes the oracle's output only when {what} "
                    f"before load, so the adapter's load does the opposite. The canonical tensors are {_layout(w)} "
                    f"(nn.Linear layout: (out_features, in_features)); the module's parameters are {_module_layout(adapter, module)}"
                )


def _agrees(y, want, cfg, w, x, dtype):
    """Within a few times NUM-4's rounding bound: the probe asks "the right weights?", not "precise enough?"."""
    bound = 4 * tolerance.rounding_bound(cfg, w, x, dtype) + tolerance.representation_floor(want, dtype)
    return bool(np.all(np.abs(y - want) <= bound))
