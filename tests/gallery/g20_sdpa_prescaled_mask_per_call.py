"""MultiHeadAttention on F.scaled_dot_product_attention with an explicit boolean mask made per call.

Each forward builds `torch.ones(T, T, dtype=bool, device=x.device).tril()` (True = may attend,
SDPA's convention), so there is no buffer, no context_length limit and nothing to move between
devices.  The queries are multiplied by head_dim ** -0.5 before the call and SDPA is told
`scale=1.0`, which gives the same scores as the book's division by sqrt(head_dim) after the
product.  Heads are split with unflatten/transpose and merged with transpose/flatten; dropout is
SDPA's dropout_p, applied to the attention weights and gated on self.training.  The book's
constructor signature and parameter names are kept, so no adapter is needed.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.num_heads, self.head_dim, self.dropout_p = num_heads, d_out // num_heads, dropout
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)

    def _split(self, t):  # (b, T, d_out) -> (b, num_heads, T, head_dim)
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x):
        T = x.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        q = self._split(self.W_query(x)) * self.head_dim**-0.5
        k, v = self._split(self.W_key(x)), self._split(self.W_value(x))
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout_p if self.training else 0.0, scale=1.0
        )
        return self.out_proj(ctx.transpose(1, 2).flatten(2))
