"""An adapter for the book's MultiHeadAttention that opts in to bfloat16 inputs (dtypes = float32, float64, bfloat16); the book's -inf masking works unchanged in bfloat16."""

import torch

import attnspec
from attnspec.reference import MultiHeadAttention as BookMHA


class BookMHAWithBFloat16(attnspec.Adapter):
    kind = "MultiHeadAttention"
    dtypes = ("float32", "float64", "bfloat16")
    long_sequences = "raise"

    def build(self, cfg):
        return BookMHA(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias)

    def load(self, module, weights, cfg):
        pairs = [("W_query", module.W_query.weight), ("W_key", module.W_key.weight), ("W_value", module.W_value.weight),
                 ("W_out", module.out_proj.weight), ("b_out", module.out_proj.bias)]
        if cfg.qkv_bias:
            pairs += [("b_query", module.W_query.bias), ("b_key", module.W_key.bias), ("b_value", module.W_value.bias)]
        with torch.no_grad():
            for canonical, param in pairs:
                param.copy_(weights[canonical])
