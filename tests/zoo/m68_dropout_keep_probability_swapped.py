"""A hand-made dropout keeps each weight with probability p instead of 1 - p (then rescales by
1/(1-p)); eval-mode tests, and p = 0.5 where the two coincide, hide it (at p = 0 in training it
drops everything)."""

import torch
import torch.nn as nn

CLAUSES = ["DROP-6", "DROP-5", "DROP-4"]


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(1, 2)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        if self.training:
            keep = torch.bernoulli(torch.full_like(attn_weights, self.dropout.p))
            attn_weights = attn_weights * keep / (1 - self.dropout.p)

        context_vec = attn_weights @ values
        return context_vec
