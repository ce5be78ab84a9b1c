"""A nanoGPT-style CausalSelfAttention (manual attention path), configured by a GPTConfig-like object.

`c_attn` is one nn.Linear(n_embd, 3 * n_embd) whose output is split into q, k, v ([Q; K; V], each
head-major), `c_proj` projects back, and a (1, 1, block_size, block_size) tril buffer named `bias`
(1 = keep) masks the future with -inf before the softmax; scores are scaled by 1/sqrt(head_dim).
This is the book's MultiHeadAttention with c_attn.weight = cat([W_query, W_key, W_value]).  Two
things differ and are declared: one embedding width serves input and output (square_only), and one
`bias` flag covers both projections, so only qkv_bias=True can be expressed (the book's out_proj is
always biased); the parameter count is then 4 n_embd^2 + 4 n_embd.  nanoGPT also drops the
output (`resid_dropout`), which the spec does not allow inside attention: the adapter declares
`output_dropout = "resid_dropout"`, so the suite sets that dropout's p to 0 in every module it
builds, and `attn_dropout`, which acts on the attention weights, keeps the requested p.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

import attnspec


@dataclass
class GPTConfig:
    block_size: int = 1024
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        n = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NanoGPTAttention(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "nanoGPT CausalSelfAttention (manual path)"
    square_only = True
    qkv_bias_options = (True,)
    long_sequences = "raise"  # the `bias` buffer has block_size rows
    output_dropout = "resid_dropout"  # the spec allows dropout on the attention weights only

    def build(self, cfg):
        config = GPTConfig(block_size=cfg.context_length, n_head=cfg.num_heads, n_embd=cfg.d_out, dropout=cfg.dropout, bias=True)
        return CausalSelfAttention(config)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.c_attn.weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]))
            module.c_attn.bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            module.c_proj.weight.copy_(weights["W_out"])
            module.c_proj.bias.copy_(weights["b_out"])

    def parameter_count(self, cfg):
        d = cfg.d_out  # c_attn (3d x d + 3d) and c_proj (d x d + d)
        return 4 * d * d + 4 * d
