"""SelfAttention_v2 that scales the queries by 1/sqrt(d_out) before the product with the keys.

Scaling one factor of a product is the same as scaling the product: (q / sqrt(d_k)) @ k^T equals
(q @ k^T) / sqrt(d_k), with d_k = d_out the key width, as in the book; only the rounding differs.
Scaling the queries once is a common style (it is one multiply per query element instead of one
per score).  Everything else is the book's v2: three nn.Linear projections with optional bias,
unbatched (num_tokens, d_in) input, no mask, softmax over the keys, weights @ values.
"""

import torch
import torch.nn as nn


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys = self.W_key(x)
        values = self.W_value(x)
        queries = self.W_query(x) * keys.shape[-1] ** -0.5
        attn_weights = torch.softmax(queries @ keys.T, dim=-1)
        return attn_weights @ values
