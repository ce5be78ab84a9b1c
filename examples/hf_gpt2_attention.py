"""Check Hugging Face `transformers` GPT2Attention against the spec (needs `pip install transformers`).

    attnspec check examples/hf_gpt2_attention.py

GPT-2 stores its projections as `Conv1D` layers, whose weight is (in, out),
the transpose of nn.Linear's: c_attn.weight = cat([W_query, W_key, W_value]).T
of shape (d, 3d), c_proj.weight = W_out.T.  Every GPT-2 projection has a bias,
so qkv_bias=False is expressed by a zero c_attn.bias (3 * d_out zero-valued
parameters, declared through `parameter_count`), and d_in must equal d_out.
`read` transposes the weights back into the canonical layout (docs/adapters.md,
example (b)).

Pitfalls this adapter avoids:
  * a standalone GPT2Attention is not causal in recent releases (transformers
    >= 5.2; the model builds the mask): always pass an explicit additive mask
    of shape (1, 1, T, T) holding finfo(dtype).min above the diagonal;
  * the eager path is forced, so the mask semantics do not depend on SDPA;
  * Conv1D uses x.view(-1, d), which raises on non-contiguous input: the
    adapter passes x.contiguous();
  * forward returns a tuple (output, weights): keep element [0].
Dropout: attn_pdrop acts on the attention weights as the spec says; resid_pdrop
(dropout on the output) is kept at 0.
"""

import torch

import attnspec


class HFGPT2Attention(attnspec.Adapter):
    kind = "MultiHeadAttention"
    name = "transformers.GPT2Attention"
    square_only = True
    long_sequences = "either"  # older releases slice a bias buffer of n_positions rows

    def build(self, cfg):
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

        config = GPT2Config(
            n_embd=cfg.d_out,
            n_head=cfg.num_heads,
            n_positions=cfg.context_length,
            attn_pdrop=cfg.dropout,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
        )
        config._attn_implementation = "eager"
        return GPT2Attention(config, layer_idx=0)

    def load(self, module, weights, cfg):
        with torch.no_grad():
            module.c_attn.weight.copy_(torch.cat([weights["W_query"], weights["W_key"], weights["W_value"]]).T)
            if cfg.qkv_bias:
                module.c_attn.bias.copy_(torch.cat([weights["b_query"], weights["b_key"], weights["b_value"]]))
            else:
                module.c_attn.bias.zero_()
            module.c_proj.weight.copy_(weights["W_out"].T)
            module.c_proj.bias.copy_(weights["b_out"])

    def read(self, module, cfg):
        q, k, v = module.c_attn.weight.detach().T.chunk(3)  # Conv1D (in, out) back to nn.Linear (out, in)
        out = {"W_query": q, "W_key": k, "W_value": v,
               "W_out": module.c_proj.weight.detach().T, "b_out": module.c_proj.bias.detach()}
        if cfg.qkv_bias:  # otherwise c_attn.bias holds zeros that are not canonical weights
            out["b_query"], out["b_key"], out["b_value"] = module.c_attn.bias.detach().chunk(3)
        return out

    def forward(self, module, x):
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        mask = torch.zeros(1, 1, T, T, dtype=x.dtype, device=x.device).masked_fill(future, torch.finfo(x.dtype).min)
        return module(x.contiguous(), attention_mask=mask)[0]

    def parameter_count(self, cfg):
        # c_attn (d x 3d + 3d, bias always present) + c_proj (d x d + d)
        return 3 * cfg.d_in * cfg.d_out + 3 * cfg.d_out + cfg.d_out * cfg.d_out + cfg.d_out
