"""A litgpt-style CausalSelfAttention with no dropout on the attention weights, and its adapter.

    attnspec check examples/no_attention_dropout.py

Like litgpt's attention, the module has no dropout at all: it calls
F.scaled_dot_product_attention with dropout_p=0.0 whatever mode it is in, and
its constructor takes no dropout probability.  The spec's dropout clauses
DROP-1, DROP-3, DROP-5, DROP-6 and DROP-7 describe a dropout that is not
there, so the adapter declares `attention_dropout = False`: they are reported
"not applicable: declared (attention_dropout = False)".  DROP-2 and DROP-4
(eval mode equals p = 0; p = 0 in training equals eval) still hold and are
still checked.

The layout differs from the book's in two ways that the adapter's `load` and
`read` translate:
  * one fused projection `qkv`, interleaved per head: the rows for head h are
    [q_h; k_h; v_h], each head_dim rows, the grouped layout of litgpt's fused
    projection with one head per query group (nanoGPT's c_attn is [Q; K; V]
    instead);
  * a boolean tril mask buffer `mask_cache` of max_seq_length rows (True =
    may attend, SDPA's convention), sliced to the sequence: longer sequences
    raise (long_sequences = "raise").
`qkv` takes the qkv_bias flag; `proj` always has a bias, as the book's out_proj
does.  The output width is n_embd, the input width, so d_in must equal d_out.
"""

import torch
import torch.nn.functional as F
from torch import nn

import attnspec


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, max_seq_length, attn_bias=False):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head, self.head_size = n_head, n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=attn_bias)  # per head: [q_h; k_h; v_h]
        self.proj = nn.Linear(n_embd, n_embd, bias=True)
        ones = torch.ones(max_seq_length, max_seq_length, dtype=torch.bool)
        self.register_buffer("mask_cache", torch.tril(ones), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, self.n_head, 3, self.head_size).permute(0, 2, 3, 1, 4)
        q, k, v = qkv.unbind(dim=2)  # each (B, n_head, T, head_size)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask_cache[:T, :T], dropout_p=0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class NoAttentionDropout(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "examples.no_attention_dropout.CausalSelfAttention"
    square_only = True
    long_sequences = "raise"  # mask_cache has max_seq_length = context_length rows
    attention_dropout = False  # DROP-1/3/5/6/7: "not applicable: declared"

    def build(self, cfg):
        # cfg.dropout has nowhere to go: the module has no dropout
        return CausalSelfAttention(cfg.d_out, cfg.num_heads, cfg.context_length, attn_bias=cfg.qkv_bias)

    def _interleave(self, q, k, v, cfg):
        """[Q; K; V] row blocks -> per-head [q_h; k_h; v_h]; works for weights (rows, d_in) and biases (rows,)."""
        hd = cfg.head_dim
        parts = [t[h * hd:(h + 1) * hd] for h in range(cfg.num_heads) for t in (q, k, v)]
        return torch.cat(parts)

    def _split(self, fused, cfg):
        """The inverse of _interleave: (q, k, v), each with head h in rows h*head_dim:(h+1)*head_dim."""
        per_head = fused.view(cfg.num_heads, 3, cfg.head_dim, *fused.shape[1:])
        return tuple(per_head[:, i].reshape(cfg.d_out, *fused.shape[1:]) for i in range(3))

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.qkv.weight.copy_(self._interleave(weights["W_query"], weights["W_key"], weights["W_value"], cfg))
            if cfg.qkv_bias:
                module.qkv.bias.copy_(self._interleave(weights["b_query"], weights["b_key"], weights["b_value"], cfg))
            module.proj.weight.copy_(weights["W_out"])
            module.proj.bias.copy_(weights["b_out"])

    def read(self, module, cfg):
        q, k, v = self._split(module.qkv.weight.detach(), cfg)
        out = {"W_query": q, "W_key": k, "W_value": v,
               "W_out": module.proj.weight.detach(), "b_out": module.proj.bias.detach()}
        if cfg.qkv_bias:
            out["b_query"], out["b_key"], out["b_value"] = self._split(module.qkv.bias.detach(), cfg)
        return out
