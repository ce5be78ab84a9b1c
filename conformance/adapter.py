"""How an implementation plugs into the suite.

An `Adapter` builds a module for a `Config`, copies the spec's canonical
weights into it, and calls it.  Book-style classes need no adapter of their
own: `BookAdapter` copies weights by the book's parameter names.  Anything
else (fused QKV, `nn.MultiheadAttention`, Conv1D layouts, other call
conventions) subclasses `Adapter` and declares its implementation-defined
choices as class attributes.

Canonical weights (clause IFACE-8) use the `nn.Linear` convention:
`W_query`, `W_key`, `W_value` of shape (width, d_in), optional `b_query`,
`b_key`, `b_value` of shape (width,), and for MultiHeadAttention `W_out`
(d_out, d_out) and `b_out` (d_out,).  Head h owns rows h*head_dim:(h+1)*head_dim.
For MultiHeadAttentionWrapper, width = num_heads * d_out and head h owns
rows h*d_out:(h+1)*d_out.

This module imports torch only: it also runs inside grading workers.
"""

import inspect
import itertools

import torch

from .config import KINDS, Config


class WeightMappingError(Exception):
    """The canonical weights cannot be copied into the module (clause IFACE-8)."""


class Adapter:
    """Base class for plugging an implementation in.  Override what differs.

    Declarations (class attributes):
      kind                which book class this implements (one of attnspec.KINDS)
      name                how reports name the target
      long_sequences      "raise", "compute" or "either": what happens when
                          num_tokens > context_length (clause CAUSAL-6)
      internal_precision  None, or a dtype name such as "float32" when the
                          implementation computes below the input's precision (NUM-2)
      dtypes              input dtypes the implementation supports
      square_only         True when d_in must equal d_out (nn.MultiheadAttention)
      qkv_bias_options    which qkv_bias values can be expressed
      max_heads           None, or the most heads it supports
      attention_dropout   False when the implementation has no dropout on the attention
                          weights (litgpt): DROP-1/3/5/6/7 are reported "not applicable: declared"
      output_dropout      the attribute path of an extra nn.Dropout on the output
                          ("resid_dropout" in nanoGPT): the suite sets its p to 0 for every
                          check; True when it cannot be switched off (the attention-dropout
                          clauses are then declared not applicable)
      skip                {clause ID: why} for other clauses the layout cannot meet by design

    Optional method `read(module, cfg)`: the module's weights as canonical tensors,
    the inverse of `load`.  With it, `attnspec check` verifies the mapping by a round
    trip before any property runs (docs/adapters.md).
    """

    kind = "MultiHeadAttention"
    name = None
    long_sequences = "either"
    internal_precision = None
    dtypes = ("float32", "float64")
    square_only = False
    qkv_bias_options = (False, True)
    max_heads = None
    attention_dropout = True
    output_dropout = None
    skip = {}
    adapter_type = "custom"

    def build(self, cfg: Config):
        """Return a new module (or any object `forward` accepts) for `cfg`."""
        raise NotImplementedError

    def load(self, module, weights: dict, cfg: Config):
        """Copy canonical weights (a dict of torch tensors) into `module`."""
        raise NotImplementedError

    def forward(self, module, x):
        """Call the module; return the output tensor of shape (..., out_features)."""
        return module(x)

    read = None  # optional: def read(self, module, cfg) -> dict of canonical tensors (the inverse of load)

    def parameter_count(self, cfg: Config):
        """The number of trainable parameters this layout has, or None (clause PARAM-6).

        None means the book's formula for the kind applies; layouts that add
        zero-valued or extra parameters return their own count and say why.
        """
        return None

    def to_dtype(self, module, dtype):
        if not isinstance(module, torch.nn.Module):
            return module
        tensors = itertools.chain(module.parameters(), module.buffers())
        if all(t.dtype == dtype or not t.is_floating_point() for t in tensors):
            return module  # .to would change nothing, only walk every submodule (a third of a build)
        return module.to(dtype)

    def set_training(self, module, training: bool):
        if isinstance(module, torch.nn.Module):
            module.train(training)

    def named_parameters(self, module):
        if isinstance(module, torch.nn.Module):
            return list(module.named_parameters())
        return []

    def named_buffers(self, module):
        if isinstance(module, torch.nn.Module):
            return list(module.named_buffers())
        return []

    def signature(self):
        """The constructor signature to check against the book's (IFACE-1), or None."""
        return None

    def describe(self):
        return {
            "name": self.name or type(self).__name__,
            "adapter": self.adapter_type,
            "kind": self.kind,
            "long_sequences": self.long_sequences,
            "internal_precision": self.internal_precision,
            "dtypes": list(self.dtypes),
            "square_only": self.square_only,
            "qkv_bias_options": list(self.qkv_bias_options),
            "max_heads": self.max_heads,
            "attention_dropout": bool(self.attention_dropout),
            "output_dropout": self.output_dropout,
            "skip": {str(k): str(v) for k, v in dict(self.skip or {}).items()},
            "signature": self.signature(),
        }


def _copy(param, value, name):
    if tuple(param.shape) != tuple(value.shape):
        raise WeightMappingError(
            f"parameter {name} has shape {tuple(param.shape)}, the spec's layout needs {tuple(value.shape)}"
        )
    with torch.no_grad():
        param.copy_(value.to(dtype=param.dtype, device=param.device))


def _projection_targets(prefix, cfg):
    """(canonical name, parameter name, transpose) for one head's projections."""
    names = []
    for role in ("query", "key", "value"):
        if cfg.kind == "SelfAttention_v1":
            names.append((f"W_{role}", f"{prefix}W_{role}", True))
        else:
            names.append((f"W_{role}", f"{prefix}W_{role}.weight", False))
            if cfg.qkv_bias:
                names.append((f"b_{role}", f"{prefix}W_{role}.bias", False))
    return names


class BookAdapter(Adapter):
    """A class with the book's constructor signature and parameter names."""

    adapter_type = "book"

    def __init__(self, cls, kind=None):
        if kind is None:
            kind = cls.__name__
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        self.cls = cls
        self.kind = kind
        self.name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"

    def build(self, cfg):
        k, c = cfg.kind, cfg
        if k == "SelfAttention_v1":
            return self.cls(c.d_in, c.d_out)
        if k == "SelfAttention_v2":
            return self.cls(c.d_in, c.d_out, qkv_bias=c.qkv_bias) if c.qkv_bias else self.cls(c.d_in, c.d_out)
        if k == "CausalAttention":
            args = (c.d_in, c.d_out, c.context_length, c.dropout)
            return self.cls(*args, qkv_bias=c.qkv_bias) if c.qkv_bias else self.cls(*args)
        args = (c.d_in, c.d_out, c.context_length, c.dropout, c.num_heads)
        return self.cls(*args, qkv_bias=c.qkv_bias) if c.qkv_bias else self.cls(*args)

    def load(self, module, weights, cfg):
        params = dict(module.named_parameters())

        def put(canonical, pname, transpose, rows=None):
            if pname not in params:
                found = ", ".join(sorted(params)) or "none"
                raise WeightMappingError(
                    f"{cfg.kind} needs a parameter named {pname} (the book's name) to receive "
                    f"{canonical}; the module's parameters are: {found}"
                )
            value = weights[canonical]
            if rows is not None:
                value = value[rows]
            _copy(params[pname], value.T if transpose else value, pname)

        if cfg.kind == "MultiHeadAttentionWrapper":
            heads = getattr(module, "heads", None)
            if heads is None or len(heads) != cfg.num_heads:
                raise WeightMappingError(
                    f"MultiHeadAttentionWrapper needs `heads`, a list of {cfg.num_heads} CausalAttention modules"
                )
            for h in range(cfg.num_heads):
                rows = slice(h * cfg.d_out, (h + 1) * cfg.d_out)
                for canonical, pname, transpose in _projection_targets(f"heads.{h}.", cfg):
                    put(canonical, pname, transpose, rows)
            return
        for canonical, pname, transpose in _projection_targets("", cfg):
            put(canonical, pname, transpose)
        if cfg.kind == "MultiHeadAttention":
            put("W_out", "out_proj.weight", False)
            put("b_out", "out_proj.bias", False)

    def signature(self):
        try:
            return str(inspect.signature(self.cls))
        except (TypeError, ValueError):
            return None


class FunctionAdapter(Adapter):
    """A plain function, such as the simplified attention of section 3.3."""

    kind = "simplified_self_attention"
    adapter_type = "book"

    def __init__(self, fn, kind="simplified_self_attention"):
        self.fn = fn
        self.kind = kind
        self.name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"

    def build(self, cfg):
        return self.fn

    def load(self, module, weights, cfg):
        if weights:
            raise WeightMappingError("a function has no weights to load")

    def forward(self, module, x):
        return module(x)

    def signature(self):
        try:
            return str(inspect.signature(self.fn))
        except (TypeError, ValueError):
            return None
