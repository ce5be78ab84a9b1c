"""SelfAttention_v1 projects with x @ W.T (the nn.Linear habit) on its (d_in, d_out) parameters; it
raises unless d_in == d_out, and a test with d_in == d_out hides that the weights are used
transposed."""

import torch
import torch.nn as nn

CLAUSES = ["QKV-1", "SHAPE-2", "QKV-5", "NUM-1"]


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        keys = x @ self.W_key.T
        queries = x @ self.W_query.T
        values = x @ self.W_value.T
        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        context_vec = attn_weights @ values
        return context_vec
