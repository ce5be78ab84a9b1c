"""MultiHeadAttentionWrapper whose heads are single-head causal attentions on F.scaled_dot_product_attention.

Each head keeps the book's parameter names (heads.{h}.W_query, W_key, W_value, nn.Linear(d_in,
d_out) with optional bias) but computes its attention with SDPA's is_causal=True, whose default
scale is 1/sqrt(d_out) (the head's width, as in the book's CausalAttention) and whose dropout_p is
applied to the attention weights, gated on self.training.  There is no mask buffer, so heads also
compute beyond context_length.  The wrapper concatenates the heads' outputs along the last axis in
order, giving num_heads * d_out features like the book's wrapper; no adapter is needed.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class _SDPACausalHead(nn.Module):
    def __init__(self, d_in, d_out, dropout, qkv_bias):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout_p = dropout

    def forward(self, x):
        return F.scaled_dot_product_attention(
            self.W_query(x), self.W_key(x), self.W_value(x),
            is_causal=True, dropout_p=self.dropout_p if self.training else 0.0,
        )


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList([_SDPACausalHead(d_in, d_out, dropout, qkv_bias) for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)
