"""A MultiHeadAttention with an optional KV cache, in the style of the book's chapter-4 KV-cache code.

With use_cache=True, forward appends the new keys and values to the `cache_k` / `cache_v` buffers
(registered as None, non-persistent), attends from the new queries to every cached key, and slices
the causal mask at the queries' absolute positions `ptr_current_pos`; reset_cache() empties it.
The suite calls module(x), where use_cache defaults to False: then the cache is neither read nor
written, the mask slice is [0:T, 0:T] and forward keeps no state, so the computation is exactly the
book's MultiHeadAttention (scores masked with -inf from the float triu buffer, softmax of
scores / sqrt(head_dim), nn.Dropout on the weights, out_proj).  Constructor signature and parameter
names are the book's, so no adapter is needed.
"""

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))
        self.register_buffer("cache_k", None, persistent=False)
        self.register_buffer("cache_v", None, persistent=False)
        self.ptr_current_pos = 0

    def _heads(self, t, b, T):
        return t.view(b, T, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, use_cache=False):
        b, num_tokens, _ = x.shape
        queries = self._heads(self.W_query(x), b, num_tokens)
        keys_new = self._heads(self.W_key(x), b, num_tokens)
        values_new = self._heads(self.W_value(x), b, num_tokens)

        start = 0
        if use_cache:
            if self.cache_k is None:
                self.cache_k, self.cache_v = keys_new, values_new
            else:
                self.cache_k = torch.cat([self.cache_k, keys_new], dim=2)
                self.cache_v = torch.cat([self.cache_v, values_new], dim=2)
            keys, values = self.cache_k, self.cache_v
            start = self.ptr_current_pos
            self.ptr_current_pos += num_tokens
        else:
            keys, values = keys_new, values_new

        num_keys = keys.shape[2]
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[start : start + num_tokens, :num_keys]
        attn_scores = attn_scores.masked_fill(mask_bool, -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context_vec = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)

    def reset_cache(self):
        self.cache_k, self.cache_v = None, None
        self.ptr_current_pos = 0
