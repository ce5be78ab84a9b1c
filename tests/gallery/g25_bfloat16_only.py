"""The book's MultiHeadAttention run in bfloat16 only: an Adapter declaring dtypes = ("bfloat16",).

This is how a bfloat16 deployment (mixed-precision training, a bf16 checkpoint) would be checked:
the module is built and converted to bfloat16, receives canonical weights rounded to bfloat16, and
refuses any other dtype, so every property the suite runs uses bfloat16 inputs and judges them with
bfloat16's error budget.  The computation is the reference class unchanged: its -inf masking and
softmax work unchanged in bfloat16 (masked weights are exactly 0), so the outputs are the
book's, computed at bfloat16 precision.
"""

import torch

import attnspec
from attnspec.reference import MultiHeadAttention as BookMHA


class BookMHAInBFloat16(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "attnspec.reference.MultiHeadAttention in bfloat16"
    dtypes = ("bfloat16",)
    long_sequences = "raise"

    def build(self, cfg):
        module = BookMHA(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias)
        return module.to(torch.bfloat16)

    def to_dtype(self, module, dtype):
        if dtype != torch.bfloat16:
            raise TypeError(f"this deployment is bfloat16 only, not {dtype}")
        return module

    def load(self, module, weights, cfg):
        params = dict(module.named_parameters())
        targets = {"W_query": "W_query.weight", "W_key": "W_key.weight", "W_value": "W_value.weight",
                   "b_query": "W_query.bias", "b_key": "W_key.bias", "b_value": "W_value.bias",
                   "W_out": "out_proj.weight", "b_out": "out_proj.bias"}
        with torch.no_grad():
            for canonical, value in weights.items():
                params[targets[canonical]].copy_(value.to(torch.bfloat16))
