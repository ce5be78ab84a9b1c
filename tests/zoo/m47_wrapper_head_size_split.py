"""The wrapper gives each head d_out // num_heads features, MultiHeadAttention's convention, although
its d_out is per head; one head hides it."""

import torch
import torch.nn as nn

from attnspec.reference import CausalAttention  # the class from section 3.5

CLAUSES = ["SHAPE-3", "PARAM-3", "HEAD-1", "IFACE-8"]


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out // num_heads, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)
