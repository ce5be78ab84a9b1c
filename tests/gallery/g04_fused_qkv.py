"""A fused-QKV MultiHeadAttention (one nn.Linear(d_in, 3 * d_out)) with pre-scaled queries; its parameter names differ from the book's, so it comes with an Adapter."""

import torch
from torch import nn

import attnspec


class PackedAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.c_attn = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.c_proj = nn.Linear(d_out, d_out)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("bias", torch.tril(torch.ones(context_length, context_length)).view(1, 1, context_length, context_length))

    def forward(self, x):
        b, T, _ = x.shape
        q, k, v = self.c_attn(x).split(self.d_out, dim=2)
        q, k, v = (t.view(b, T, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        att = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.drop(torch.softmax(att, dim=-1))
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(b, T, self.d_out))


class PackedAttentionAdapter(attnspec.Adapter):
    kind = "MultiHeadAttention"
    long_sequences = "raise"

    def build(self, cfg):
        return PackedAttention(cfg.d_in, cfg.d_out, cfg.context_length, cfg.dropout, cfg.num_heads, cfg.qkv_bias)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.c_attn.weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]))
            if cfg.qkv_bias:
                module.c_attn.bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            module.c_proj.weight.copy_(weights["W_out"])
            module.c_proj.bias.copy_(weights["b_out"])
