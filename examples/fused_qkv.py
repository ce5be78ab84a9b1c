"""A MultiHeadAttention with one fused query/key/value projection, and its adapter.

    attnspec check examples/fused_qkv.py

`FusedQKVAttention` computes exactly what the book's MultiHeadAttention
computes, but holds W_query, W_key and W_value stacked in one
nn.Linear(d_in, 3 * d_out) named `qkv`, as nanoGPT, minGPT and litgpt do, and
calls it once per forward.  Its parameter names differ from the book's, so the
suite cannot copy weights by name: `FusedQKV` is the adapter that says where
the canonical weights go (qkv.weight = cat([W_query, W_key, W_value])), and
`read` says how to get them back, so `attnspec check` can test the mapping by a
round trip before any property runs (docs/adapters.md).
"""

import torch
from torch import nn

import attnspec


class FusedQKVAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), 1))

    def forward(self, x):
        b, T, _ = x.shape
        qkv = self.qkv(x).view(b, T, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, num_heads, T, head_dim)
        scores = (q @ k.transpose(-2, -1)).masked_fill(self.mask[:T, :T], -torch.inf)
        weights = self.dropout(torch.softmax(scores / self.head_dim**0.5, dim=-1))
        context = (weights @ v).transpose(1, 2).reshape(b, T, self.d_out)
        return self.proj(context)


class FusedQKV(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "examples.fused_qkv.FusedQKVAttention"
    long_sequences = "raise"  # the mask buffer has context_length rows

    def build(self, cfg):
        return FusedQKVAttention(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, qkv_bias=cfg.qkv_bias)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.qkv.weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]))
            if cfg.qkv_bias:
                module.qkv.bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            module.proj.weight.copy_(weights["W_out"])
            module.proj.bias.copy_(weights["b_out"])

    def read(self, module, cfg):
        q, k, v = module.qkv.weight.detach().chunk(3)  # rows 0:d_out, d_out:2d_out, 2d_out:3d_out
        out = {"W_query": q, "W_key": k, "W_value": v,
               "W_out": module.proj.weight.detach(), "b_out": module.proj.bias.detach()}
        if cfg.qkv_bias:
            out["b_query"], out["b_key"], out["b_value"] = module.qkv.bias.detach().chunk(3)
        return out
