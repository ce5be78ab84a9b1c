"""A minGPT-style CausalSelfAttention with separate `key`, `query` and `value` nn.Linear layers.

This is the original minGPT layout: three always-biased nn.Linear(n_embd, n_embd) projections, a
`proj` output layer, a (1, 1, block_size, block_size) tril buffer named `mask` (1 = keep) applied
with masked_fill(-inf) before the softmax, scores scaled by 1/sqrt(head_size), heads split with
`.view(B, T, n_head, hs).transpose(1, 2)`, `attn_drop` on the attention weights and `resid_drop`
on the output.  It computes the book's MultiHeadAttention with query.weight = W_query and so on.
Its configuration is a namespace (n_embd, n_head, block_size, attn_pdrop, resid_pdrop), so
d_in == d_out; the projections always carry biases, so qkv_bias=False is expressed by zeroing the
three biases (3 * d extra zero-valued parameters, declared for PARAM-6).  The spec allows dropout
on the attention weights only, so the adapter builds it with resid_pdrop = cfg.dropout, as a user
would, and declares `output_dropout = "resid_drop"`: the suite sets that dropout's p to 0 in every
module it builds.
"""

import math
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

import attnspec


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        n = config.block_size
        self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n))
        self.n_head = config.n_head

    def forward(self, x):
        B, T, C = x.size()
        hs = C // self.n_head
        k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MinGPTAttention(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "minGPT CausalSelfAttention (separate key/query/value)"
    square_only = True
    long_sequences = "raise"  # the `mask` buffer has block_size rows
    output_dropout = "resid_drop"  # dropout on the output: the suite switches it off

    def build(self, cfg):
        config = SimpleNamespace(n_embd=cfg.d_out, n_head=cfg.num_heads, block_size=cfg.context_length,
                                 attn_pdrop=cfg.dropout, resid_pdrop=cfg.dropout)
        return CausalSelfAttention(config)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            for role in ("query", "key", "value"):
                layer = getattr(module, role)
                layer.weight.copy_(weights[f"W_{role}"])
                if cfg.qkv_bias:
                    layer.bias.copy_(weights[f"b_{role}"])
                else:
                    layer.bias.zero_()
            module.proj.weight.copy_(weights["W_out"])
            module.proj.bias.copy_(weights["b_out"])

    def parameter_count(self, cfg):
        d = cfg.d_out  # four biased d x d layers, whatever qkv_bias says
        return 4 * d * d + 4 * d
