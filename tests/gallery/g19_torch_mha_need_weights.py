"""torch.nn.MultiheadAttention in its default (num_tokens, batch, embed_dim) layout, called with need_weights=True.

With need_weights=True PyTorch takes its explicit (non-fused) path and also returns the attention
weights averaged over heads (average_attn_weights keeps its default True); the adapter discards
them and returns only the output.  The causal mask is an additive float mask (0 where a token may
attend, -inf in the future) built per call in the input's dtype and device, which softmax turns
into exactly-zero weights, so this computes the book's MultiHeadAttention.  in_proj_weight is
cat([W_query, W_key, W_value]); the module's single `bias` flag covers in_proj and out_proj, so it
is built with bias=True and qkv_bias=False is expressed by zeroing in_proj_bias (3 * d_out extra
zero-valued parameters, declared for PARAM-6).  Query and output width are both embed_dim, so
d_in must equal d_out.  Dropout in nn.MultiheadAttention acts on the attention weights only.
"""

import torch
from torch import nn

import attnspec


class TorchMHANeedWeights(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "torch.nn.MultiheadAttention (need_weights=True, float mask, sequence-first)"
    square_only = True
    long_sequences = "compute"  # no buffer: the mask is as long as the input

    def build(self, cfg):
        return nn.MultiheadAttention(embed_dim=cfg.d_out, num_heads=cfg.num_heads, dropout=cfg.dropout, bias=True)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.in_proj_weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]], dim=0))
            if cfg.qkv_bias:
                module.in_proj_bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            else:
                module.in_proj_bias.zero_()
            module.out_proj.weight.copy_(weights["W_out"])
            module.out_proj.bias.copy_(weights["b_out"])

    def forward(self, module, x):
        T = x.shape[-2]
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
        additive = torch.zeros(T, T, dtype=x.dtype, device=x.device).masked_fill(future, float("-inf"))
        seq_first = x.transpose(0, 1)  # (num_tokens, batch, embed_dim)
        out, _averaged_weights = module(seq_first, seq_first, seq_first, attn_mask=additive, need_weights=True)
        return out.transpose(0, 1)

    def parameter_count(self, cfg):
        # in_proj weight and its always-present bias, plus out_proj weight and bias
        return 3 * cfg.d_in * cfg.d_out + 3 * cfg.d_out + cfg.d_out * cfg.d_out + cfg.d_out
