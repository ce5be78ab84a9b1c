"""Run an implementation as if on other hardware, to prove verdicts do not depend on the machine.

A correct implementation checked on another CPU, BLAS, thread count or GPU
must get the same verdict.  Other hardware differs in the last bits: rows
computed in one batched call, sums reduced in another order, other blocking.
`emulate(adapter, how)` wraps an Adapter so that its forward pass does that
here, deterministically:

  ulps      every output element moves by up to 2 ulps, as a function of its
            position and of the call's input shape: rows, prefixes and batch
            sizes disagree in the last bits, repeated calls agree
  reversed  every matrix product, softmax and sum adds its terms in the
            reverse order (the contraction axis flipped)
  blocked   products are summed in blocks of two, the blocks in reverse order
  float64   products, softmaxes and sums accumulate in float64, rounded once
            (a more accurate machine)

Products, softmaxes and sums are replaced below autograd (a
TorchDispatchMode), so gradients follow the same arithmetic;
scaled_dot_product_attention is first lowered to its math form (a
TorchFunctionMode) so its fused kernel takes part.  `threads` (the other
emulation) is an engine setting: `check_candidate(..., threads=2)`.

The self-test checks every gallery entry under every emulation, and the
suite's own tests use them: a green run on one machine proves nothing.
"""

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from .adapter import Adapter

ORDERS = ("reversed", "blocked", "float64")
EMULATIONS = ("none", "ulps", "threads") + ORDERS
THREADS = {"threads": 2}  # emulations that are a thread count rather than arithmetic


def threads_for(how):
    """The torch thread count an emulation runs with (1, the engine's default, otherwise)."""
    return THREADS.get(how, 1)


# -- last-bit noise -------------------------------------------------------------


def _mix(values):
    """A 32-bit integer hash, element-wise, of an int64 tensor (values < 2**31)."""
    h = (values * 2654435761) % (2**32)
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) % (2**32)
    return h ^ (h >> 12)


def ulp_noise(y):
    """k * ulp(y) with k in -2..2 chosen by (flat position, shape); 0 where y is 0."""
    with torch.no_grad():
        salt = 17
        for size in y.shape:
            salt = (salt * 1_000_003 + int(size) + 1) % (2**31)
        index = torch.arange(y.numel(), dtype=torch.int64).reshape(y.shape)
        k = (_mix((index + salt) % (2**31)) % 5 - 2).to(torch.float64)
        y64 = y.detach().to(torch.float64)
        _, exponent = torch.frexp(y64.abs())
        ulp = torch.finfo(y.dtype).eps * torch.pow(2.0, (exponent - 1).to(torch.float64))
        moved = torch.where(y64 == 0, y64, y64 + k * ulp).to(y.dtype)
        return (moved.to(torch.float64) - y64).to(y.dtype)


# -- other orders of summation ----------------------------------------------------


def _blocks(n, size=2):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _product(a, b, order):
    """a @ b over the last axis of a and the second-to-last of b, summed in `order`."""
    if order == "float64":
        return torch.matmul(a.to(torch.float64), b.to(torch.float64)).to(a.dtype)
    if order == "reversed":
        return torch.matmul(a.flip(-1), b.flip(-2))
    parts = [torch.matmul(a[..., s], b[..., s, :]) for s in _blocks(a.shape[-1])]
    total = parts[-1]
    for part in reversed(parts[:-1]):
        total = total + part
    return total


def _reduce(x, dims, keepdim, order):
    """x.sum(dims) with the terms added in `order`."""
    dims = [d % x.dim() for d in dims] if dims else list(range(x.dim()))
    if order == "float64":
        return x.to(torch.float64).sum(dims, keepdim=keepdim).to(x.dtype)
    if order == "reversed":
        return x.flip(dims).sum(dims, keepdim=keepdim)
    total = x
    for d in sorted(dims, reverse=True):
        pieces = [total.narrow(d, s.start, s.stop - s.start).sum(d, keepdim=True) for s in _blocks(total.shape[d])]
        acc = pieces[-1]
        for piece in reversed(pieces[:-1]):
            acc = acc + piece
        total = acc
    return total if keepdim else total.squeeze(tuple(dims))


def _softmax(x, dim, order, safe=False):
    m = x.amax(dim, keepdim=True)
    if safe:
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    e = torch.exp(x - m)
    s = _reduce(e, [dim], True, order)
    out = e / s
    if safe:
        out = torch.where(s == 0, torch.zeros_like(out), out)
    return out


class _Reordered(TorchDispatchMode):
    """Matrix products, softmaxes and sums, below autograd, in another order of summation."""

    def __init__(self, order):
        super().__init__()
        self.order = order

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        aten = torch.ops.aten
        o = self.order
        if func in (aten.mm.default, aten.bmm.default):
            return _product(args[0], args[1], o)
        if func in (aten.addmm.default, aten.baddbmm.default):
            bias, a, b = args[:3]
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
            product = _product(a, b, o)
            product = product if alpha == 1 else product * alpha
            return product + (bias if beta == 1 else bias * beta)
        if func is aten._softmax.default:
            x, dim, half_to_float = args
            out = _softmax(x.float() if half_to_float else x, dim, o)
            return out
        if func is aten._safe_softmax.default:
            x, dim = args[:2]
            dtype = kwargs.get("dtype") or (args[2] if len(args) > 2 else None)
            return _softmax(x if dtype is None else x.to(dtype), dim, o, safe=True)
        if func is aten.sum.dim_IntList and x_is_float(args[0]):
            x, dims = args[0], args[1]
            keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            dtype = kwargs.get("dtype")
            return _reduce(x if dtype is None else x.to(dtype), list(dims or []), keepdim, o)
        return func(*args, **kwargs)


def x_is_float(t):
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def sdpa_math(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """scaled_dot_product_attention in its math form: what another backend computes."""
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    bias = torch.zeros(L, S, dtype=query.dtype, device=query.device)
    if is_causal:
        bias = bias.masked_fill(~torch.ones(L, S, dtype=torch.bool, device=query.device).tril(), -math.inf)
    if attn_mask is not None:
        bias = bias.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else bias + attn_mask
    weights = torch.softmax(query @ key.transpose(-2, -1) * scale + bias, dim=-1)
    if dropout_p > 0:
        weights = torch.dropout(weights, dropout_p, True)
    return weights @ value


class _LowerSDPA(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and not kwargs.get("enable_gqa"):
            return sdpa_math(*args, **kwargs)
        return func(*args, **kwargs)


# -- the wrapper ------------------------------------------------------------------


class Emulated(Adapter):
    """`inner` with its forward pass computed as on other hardware (see the module docstring)."""

    def __init__(self, inner, how):
        if how not in EMULATIONS:
            raise ValueError(f"unknown emulation {how!r}; choose one of {', '.join(EMULATIONS)}")
        self.inner = inner
        self.how = how
        self.kind = inner.kind

    def __getattr__(self, name):  # declarations and helpers come from the wrapped adapter
        return getattr(self.__dict__["inner"], name)

    def forward(self, module, x):
        if self.how == "ulps":
            y = self.inner.forward(module, x)
            return y + ulp_noise(y) if isinstance(y, torch.Tensor) and y.is_floating_point() else y
        if self.how in ORDERS:
            with _LowerSDPA(), _Reordered(self.how):
                return self.inner.forward(module, x)
        return self.inner.forward(module, x)

    # the Adapter methods delegate explicitly (class attributes would shadow __getattr__)
    def build(self, cfg):
        return self.inner.build(cfg)

    def load(self, module, weights, cfg):
        return self.inner.load(module, weights, cfg)

    def parameter_count(self, cfg):
        return self.inner.parameter_count(cfg)

    def to_dtype(self, module, dtype):
        return self.inner.to_dtype(module, dtype)

    def set_training(self, module, training):
        return self.inner.set_training(module, training)

    def named_parameters(self, module):
        return self.inner.named_parameters(module)

    def named_buffers(self, module):
        return self.inner.named_buffers(module)

    def signature(self):
        return self.inner.signature()

    def describe(self):
        info = self.inner.describe()
        info["emulation"] = self.how
        return info


def emulate(adapter, how):
    """`adapter` as on other hardware; the adapter itself for "none" and "threads"."""
    if how in ("none",) + tuple(THREADS):
        return adapter
    return Emulated(adapter, how)
