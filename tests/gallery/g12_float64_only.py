"""An adapter for a MultiHeadAttention that only runs in float64 (its parameters are double and it refuses other dtypes); it declares dtypes = ("float64",) so the suite only feeds it float64."""

import torch

import attnspec
from attnspec.reference import MultiHeadAttention as BookMHA


class DoubleMHA(attnspec.Adapter):
    kind = "MultiHeadAttention"
    dtypes = ("float64",)
    long_sequences = "raise"

    def build(self, cfg):
        return BookMHA(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias).double()

    def load(self, module, weights, cfg):
        params = dict(module.named_parameters())
        names = {"W_query": "W_query.weight", "W_key": "W_key.weight", "W_value": "W_value.weight",
                 "b_query": "W_query.bias", "b_key": "W_key.bias", "b_value": "W_value.bias",
                 "W_out": "out_proj.weight", "b_out": "out_proj.bias"}
        with torch.no_grad():
            for canonical, value in weights.items():
                params[names[canonical]].copy_(value.double())

    def to_dtype(self, module, dtype):
        if dtype != torch.float64:
            raise TypeError("this implementation is float64 only")
        return module

    def forward(self, module, x):
        if x.dtype != torch.float64:
            raise TypeError("float64 input only")
        return module(x)


