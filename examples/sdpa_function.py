"""Multi-head causal attention written as a plain function, and the adapter that checks it.

    attnspec check examples/sdpa_function.py

`causal_attention` is functional code of the kind written for JAX-style or
hand-rolled training loops: it takes the input and the weights as arguments,
holds no state, and hands the attention itself to
torch.nn.functional.scaled_dot_product_attention (is_causal=True, so there is
no mask buffer and sequences longer than context_length are computed too).
Its weights are in the math layout, `x @ wq + bq`: wq, wk, wv of shape
(d_in, d_out) and wo of shape (d_out, d_out), the transposes of nn.Linear's.

A function has no place to keep weights, so the adapter's `build` returns an
`AttentionWeights`: a small nn.Module that only holds the parameters (and the
dropout probability and head count the function needs), so that `.to(dtype)`,
`.train()`, `named_parameters()` and gradients work as for any module.  Its
`forward` calls the function, so the adapter's forward stays the default
`module(x)`.  `load` copies the canonical weights in
transposed, `read` transposes them back.
"""

import torch
import torch.nn.functional as F
from torch import nn

import attnspec


def causal_attention(x, wq, wk, wv, wo, bo, num_heads, bq=None, bk=None, bv=None, dropout_p=0.0, training=False):
    """Causal multi-head self-attention of x (batch, num_tokens, d_in) -> (batch, num_tokens, d_out)."""
    b, T, _ = x.shape
    d_out = wq.shape[1]

    def heads(w, bias):
        y = x @ w if bias is None else x @ w + bias
        return y.view(b, T, num_heads, d_out // num_heads).transpose(1, 2)  # (b, num_heads, T, head_dim)

    q, k, v = heads(wq, bq), heads(wk, bk), heads(wv, bv)
    # SDPA scales by 1/sqrt(head_dim) and applies dropout_p to the attention weights
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p if training else 0.0)
    return context.transpose(1, 2).reshape(b, T, d_out) @ wo + bo


class AttentionWeights(nn.Module):
    """The parameters `causal_attention` takes, in its (in, out) layout."""

    def __init__(self, d_in, d_out, num_heads, dropout=0.0, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.num_heads, self.dropout = num_heads, dropout
        for name in ("wq", "wk", "wv"):
            setattr(self, name, nn.Parameter(torch.randn(d_in, d_out) / d_in**0.5))
        self.wo = nn.Parameter(torch.randn(d_out, d_out) / d_out**0.5)
        self.bo = nn.Parameter(torch.zeros(d_out))
        for name in ("bq", "bk", "bv"):  # None when qkv_bias is False: the function then adds nothing
            self.register_parameter(name, nn.Parameter(torch.zeros(d_out)) if qkv_bias else None)

    def forward(self, x):
        return causal_attention(
            x, self.wq, self.wk, self.wv, self.wo, self.bo, self.num_heads,
            bq=self.bq, bk=self.bk, bv=self.bv, dropout_p=self.dropout, training=self.training,
        )


class SDPAFunction(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "examples.sdpa_function.causal_attention"
    long_sequences = "compute"  # is_causal=True builds the mask per call: no context_length limit

    ROLES = (("query", "wq", "bq"), ("key", "wk", "bk"), ("value", "wv", "bv"))

    def build(self, cfg):
        # context_length is not needed: nothing is sized by it
        return AttentionWeights(cfg.d_in, cfg.d_out, cfg.num_heads, cfg.dropout, qkv_bias=cfg.qkv_bias)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            for role, w, b in self.ROLES:
                getattr(module, w).copy_(weights[f"W_{role}"].T)  # (d_out, d_in) -> (d_in, d_out)
                if cfg.qkv_bias:
                    getattr(module, b).copy_(weights[f"b_{role}"])
            module.wo.copy_(weights["W_out"].T)
            module.bo.copy_(weights["b_out"])

    def read(self, module, cfg):
        out = {}
        for role, w, b in self.ROLES:
            out[f"W_{role}"] = getattr(module, w).detach().T
            if cfg.qkv_bias:
                out[f"b_{role}"] = getattr(module, b).detach()
        out["W_out"], out["b_out"] = module.wo.detach().T, module.bo.detach()
        return out

    # forward is the default, module(x): AttentionWeights.forward calls causal_attention.  Calling the
    # function from the adapter's own forward works too, but then an exception inside the function no
    # longer runs through the module's code, and `attnspec check` blames the adapter for it (exit 2).
