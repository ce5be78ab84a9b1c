"""A nanoGPT-style CausalSelfAttention, with a dropout on its output, and its adapter.

    attnspec check examples/nanogpt_style.py

The module follows nanoGPT's layout: one fused `c_attn` nn.Linear(n_embd,
3 * n_embd) split into q, k, v, an output projection `c_proj`, and two
dropouts: `attn_dropout` on the attention weights (which the spec describes)
and `resid_dropout` on the output (which the book's classes do not have).  On
PyTorch 2 the attention runs through F.scaled_dot_product_attention with
dropout_p on the attention weights; older releases take the manual path,
which slices a (1, 1, block_size, block_size) tril buffer named `bias`.

What the adapter declares:
  * output_dropout = "resid_dropout": the suite sets that dropout's p to 0 in
    every module it builds, so the dropout clauses (DROP-*) judge the dropout
    on the attention weights alone.  Without the declaration they fail: with
    p > 0 the output itself is dropped too.
  * square_only: one width, n_embd, serves input and output.
  * qkv_bias_options = (True,): one `bias` flag covers c_attn and c_proj, and
    the book's out_proj always has a bias, so qkv_bias=False cannot be built.
  * long_sequences = "either": the SDPA path computes beyond block_size, the
    manual path raises.
No `parameter_count`: with bias=True the module has the book's 4 d^2 + 4 d
parameters, so PARAM-4 and PARAM-5 check it against the book's formula.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import attnspec


@dataclass
class GPTConfig:
    block_size: int = 1024
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.flash = hasattr(F, "scaled_dot_product_attention")
        if not self.flash:
            n = config.block_size
            self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = self.attn_dropout(F.softmax(att, dim=-1)) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NanoGPTStyle(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "examples.nanogpt_style.CausalSelfAttention"
    square_only = True
    qkv_bias_options = (True,)
    long_sequences = "either"
    output_dropout = "resid_dropout"  # the suite sets module.resid_dropout.p = 0 for every check

    def build(self, cfg):
        config = GPTConfig(block_size=cfg.context_length, n_head=cfg.num_heads, n_embd=cfg.d_out, dropout=cfg.dropout, bias=True)
        return CausalSelfAttention(config)  # no hand-made p = 0: the declaration does it

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.c_attn.weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]))
            module.c_attn.bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            module.c_proj.weight.copy_(weights["W_out"])
            module.c_proj.bias.copy_(weights["b_out"])

    def read(self, module, cfg):
        q, k, v = module.c_attn.weight.detach().split(cfg.d_out)
        bq, bk, bv = module.c_attn.bias.detach().split(cfg.d_out)
        return {"W_query": q, "W_key": k, "W_value": v, "b_query": bq, "b_key": bk, "b_value": bv,
                "W_out": module.c_proj.weight.detach(), "b_out": module.c_proj.bias.detach()}
