"""A combined-QKV MultiHeadAttention in the style of the book's bonus notebook on efficient MHA.

One nn.Linear(d_in, 3 * d_out) named `qkv` produces queries, keys and values at once; its output
is reshaped to (b, T, 3, num_heads, head_dim), permuted to (3, b, num_heads, T, head_dim) and
unbound into the three tensors.  The rest is the book's: scores q @ k^T, masked_fill with -inf
from a float triu buffer `mask` (1 = masked), softmax of scores / sqrt(head_dim), nn.Dropout on
the weights, weights @ v, heads merged head-major and a biased output projection `proj`.  Because
the fused rows are [Q; K; V], each head-major, qkv.weight = cat([W_query, W_key, W_value]) holds the
book's weights exactly; the parameter names differ from the book's, so an Adapter maps them.  The
notebook's constructor order (d_in, d_out, num_heads, context_length, ...) differs from the book's,
so the adapter passes keywords.
"""

import torch
from torch import nn

import attnspec


class MultiHeadAttentionCombinedQKV(nn.Module):
    def __init__(self, d_in, d_out, num_heads, context_length, dropout=0.0, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "embed_dim is indivisible by num_heads"
        self.num_heads, self.context_length = num_heads, context_length
        self.head_dim = d_out // num_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        batch_size, num_tokens, embed_dim = x.shape
        qkv = self.qkv(x).view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_scores = attn_scores.masked_fill(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context_vec = (attn_weights @ values).transpose(1, 2)
        return self.proj(context_vec.contiguous().view(batch_size, num_tokens, self.num_heads * self.head_dim))


class CombinedQKVAdapter(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "bonus-notebook style MultiHeadAttentionCombinedQKV"
    long_sequences = "raise"  # the mask buffer has context_length rows

    def build(self, cfg):
        return MultiHeadAttentionCombinedQKV(d_in=cfg.d_in, d_out=cfg.d_out, num_heads=cfg.num_heads,
                                             context_length=cfg.context_length, dropout=cfg.dropout, qkv_bias=cfg.qkv_bias)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.qkv.weight.copy_(torch.cat([weights[f"W_{r}"] for r in ("query", "key", "value")], dim=0))
            if cfg.qkv_bias:
                module.qkv.bias.copy_(torch.cat([weights[f"b_{r}"] for r in ("query", "key", "value")]))
            module.proj.weight.copy_(weights["W_out"])
            module.proj.bias.copy_(weights["b_out"])
