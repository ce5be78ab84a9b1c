"""Check `torch.nn.MultiheadAttention` against the spec as a MultiHeadAttention.

    attnspec check examples/torch_multihead_attention.py

nn.MultiheadAttention keeps query, key and value in one fused `in_proj_weight`
of shape (3 * embed_dim, embed_dim) = cat([W_query, W_key, W_value]), and one
`bias` flag for both the in-projection and out_proj.  So this adapter always
builds it with bias=True: qkv_bias=False is expressed by zeroing the
in-projection bias, which leaves 3 * d_out zero-valued but trainable parameters
(declared through `parameter_count`, clause PARAM-6).  Query and output width
are both embed_dim, so d_in must equal d_out (`square_only`).  `read`, the
inverse of `load`, leaves the b_* keys out when qkv_bias=False: those zeros
are not canonical weights (docs/adapters.md, example (c)).

Two pitfalls this adapter avoids (see the module's documentation):
  * the default layout is (num_tokens, batch, embed_dim): use batch_first=True;
  * `is_causal=True` without `attn_mask` is only a hint, and on the eval fast
    path it silently computes non-causal attention: always pass an explicit
    boolean mask, where True means "may NOT attend" (the opposite of SDPA).
"""

import torch
from torch import nn

import attnspec


class TorchMultiheadAttention(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "torch.nn.MultiheadAttention"
    square_only = True
    long_sequences = "compute"  # the mask is built per call: no context_length limit

    def build(self, cfg):
        return nn.MultiheadAttention(cfg.d_out, cfg.num_heads, dropout=cfg.dropout, bias=True, batch_first=True)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.in_proj_weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]))
            if cfg.qkv_bias:
                module.in_proj_bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            else:
                module.in_proj_bias.zero_()
            module.out_proj.weight.copy_(weights["W_out"])
            module.out_proj.bias.copy_(weights["b_out"])

    def read(self, module, cfg):
        q, k, v = module.in_proj_weight.detach().chunk(3)
        out = {"W_query": q, "W_key": k, "W_value": v,
               "W_out": module.out_proj.weight.detach(), "b_out": module.out_proj.bias.detach()}
        if cfg.qkv_bias:  # otherwise in_proj_bias holds zeros that are not canonical weights
            out["b_query"], out["b_key"], out["b_value"] = module.in_proj_bias.detach().chunk(3)
        return out

    def forward(self, module, x):
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # True = masked
        out, _ = module(x, x, x, attn_mask=future, need_weights=False)
        return out

    def parameter_count(self, cfg):
        # in_proj (3 d_out x d_in) + its bias (3 d_out, always present) + out_proj (d_out x d_out + d_out)
        return 3 * cfg.d_in * cfg.d_out + 3 * cfg.d_out + cfg.d_out * cfg.d_out + cfg.d_out
