"""The context vectors are computed from the raw scores instead of the softmax weights; a shape-only
test hides it."""

import torch

CLAUSES = ["SIMPLE-3", "NUM-1"]


def simplified_self_attention(inputs):
    attn_scores = inputs @ inputs.T
    attn_weights = torch.softmax(attn_scores, dim=-1)
    all_context_vecs = attn_scores @ inputs
    return all_context_vecs
