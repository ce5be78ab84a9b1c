"""The heads list is built as [CausalAttention(...)] * num_heads, one module repeated, so every head
shares one set of weights; one head or a shape-only test hides it."""

import torch
import torch.nn as nn

from attnspec.reference import CausalAttention  # the class from section 3.5

CLAUSES = ["HEAD-2", "PARAM-3", "IFACE-8", "HEAD-1"]


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)] * num_heads
        )

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)
