"""The simplified attention normalises over dim 0; because x x^T is symmetric this merely transposes
the weight matrix, and a one-token or shape-only test hides it."""

import torch

CLAUSES = ["SIMPLE-2", "NUM-1"]


def simplified_self_attention(inputs):
    attn_scores = inputs @ inputs.T
    attn_weights = torch.softmax(attn_scores, dim=0)
    all_context_vecs = attn_weights @ inputs
    return all_context_vecs
