"""MultiHeadAttention on F.scaled_dot_product_attention with a boolean tril buffer (True = may attend, SDPA's convention)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0
        self.d_out, self.num_heads, self.head_dim, self.p = d_out, num_heads, d_out // num_heads, dropout
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.register_buffer("allowed", torch.tril(torch.ones(context_length, context_length, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        b, T, _ = x.shape
        q, k, v = (w(x).view(b, T, self.num_heads, self.head_dim).transpose(1, 2) for w in (self.W_query, self.W_key, self.W_value))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed[:T, :T], dropout_p=self.p if self.training else 0.0)
        return self.out_proj(ctx.transpose(1, 2).reshape(b, T, self.d_out))
