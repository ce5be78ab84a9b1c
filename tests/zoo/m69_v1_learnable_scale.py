"""SelfAttention_v1 turns the 1/sqrt(d_out) factor into a learnable nn.Parameter, one parameter more
than the book's 3*d_in*d_out; its initial value is right, so every output test hides it."""

import torch
import torch.nn as nn

CLAUSES = ["PARAM-1"]


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
        self.scale = nn.Parameter(torch.tensor(d_out ** -0.5))

    def forward(self, x):
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores * self.scale, dim=-1)
        context_vec = attn_weights @ values
        return context_vec
