"""Section 3.3: self-attention without trainable weights."""

import torch


def simplified_self_attention(inputs):
    """Context vectors of `inputs` (num_tokens, d): every token attends to all."""
    attn_scores = inputs @ inputs.T
    attn_weights = torch.softmax(attn_scores, dim=-1)
    all_context_vecs = attn_weights @ inputs
    return all_context_vecs
