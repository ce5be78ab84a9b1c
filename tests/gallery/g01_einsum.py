"""MultiHeadAttention written with torch.einsum for every contraction (projections, scores, context)."""

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0
        self.num_heads, self.head_dim = num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def _project(self, layer, x):
        w = layer.weight.view(self.num_heads, self.head_dim, -1)
        y = torch.einsum("btd,hkd->bhtk", x, w)
        if layer.bias is not None:
            y = y + layer.bias.view(1, self.num_heads, 1, self.head_dim)
        return y

    def forward(self, x):
        T = x.shape[1]
        q, k, v = (self._project(layer, x) for layer in (self.W_query, self.W_key, self.W_value))
        scores = torch.einsum("bhik,bhjk->bhij", q, k) / self.head_dim**0.5
        scores = scores.masked_fill(self.mask[:T, :T].bool(), -torch.inf)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        context = torch.einsum("bhij,bhjk->bihk", weights, v).flatten(2)
        return self.out_proj(context)
