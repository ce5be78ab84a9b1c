"""The wrapper concatenates its heads in reverse order; one head hides it."""

import torch
import torch.nn as nn

from attnspec.reference import CausalAttention  # the class from section 3.5

CLAUSES = ["HEAD-1", "NUM-1"]


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x):
        return torch.cat([head(x) for head in reversed(self.heads)], dim=-1)
