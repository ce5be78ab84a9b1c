"""The book's CausalAttention in float64 only: an Adapter declaring kind CausalAttention and dtypes = ("float64",).

Scientific code that wants reproducible, high-precision attention often builds its modules in
double precision and never converts them.  The adapter builds the reference CausalAttention,
converts it once with .double(), copies the canonical weights by the book's names (for a single
head the canonical matrices are (d_out, d_in), exactly nn.Linear's weights) and refuses any other
dtype, so the suite feeds it float64 only and judges it with float64's error budget.  The
computation is the reference one (single head, scale sqrt(d_out), -inf mask buffer, dropout on the
weights), so it is correct by construction; what is checked is the float64-only declaration.
"""

import torch

import attnspec
from attnspec.reference import CausalAttention as BookCausalAttention


class DoubleCausalAttention(attnspec.Adapter):
    kind = "CausalAttention"
    name = "attnspec.reference.CausalAttention in float64"
    dtypes = ("float64",)
    long_sequences = "raise"  # the mask buffer has context_length rows

    def build(self, cfg):
        module = BookCausalAttention(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, qkv_bias=cfg.qkv_bias)
        return module.double()

    def to_dtype(self, module, dtype):
        if dtype != torch.float64:
            raise TypeError(f"this implementation is float64 only, not {dtype}")
        return module

    def load(self, module, weights, cfg):
        with torch.no_grad():
            for role in ("query", "key", "value"):
                layer = getattr(module, f"W_{role}")
                layer.weight.copy_(weights[f"W_{role}"].double())
                if cfg.qkv_bias:
                    layer.bias.copy_(weights[f"b_{role}"].double())
