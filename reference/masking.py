"""Section 3.5.1 and after: equivalent ways to make attention causal (CAUSAL-4).

Each function takes unscaled scores (..., T, T) and returns attention weights.
All of them give the same weights; the tests check that against the oracle.
"""

import torch
import torch.nn.functional as F


def masked_fill_before_softmax(scores, d_k):
    """The book's way: set future scores to -inf, then softmax."""
    T = scores.shape[-1]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=scores.device), diagonal=1)
    return torch.softmax(scores.masked_fill(mask, -torch.inf) / d_k**0.5, dim=-1)


def zero_after_softmax_then_renormalise(scores, d_k):
    """Section 3.5.1's first attempt: softmax, zero the future, divide by row sums."""
    T = scores.shape[-1]
    weights = torch.softmax(scores / d_k**0.5, dim=-1)
    simple_mask = torch.tril(torch.ones(T, T, dtype=scores.dtype, device=scores.device))
    masked = weights * simple_mask
    return masked / masked.sum(dim=-1, keepdim=True)


def boolean_allowed_mask(scores, d_k):
    """A boolean mask of allowed positions, others filled with the dtype's minimum."""
    T = scores.shape[-1]
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool, device=scores.device))
    filled = torch.where(allowed, scores / d_k**0.5, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1)


def additive_mask(scores, d_k):
    """An additive float mask: 0 where allowed, -inf in the future."""
    T = scores.shape[-1]
    bias = torch.zeros(T, T, dtype=scores.dtype, device=scores.device)
    bias = bias.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1), -torch.inf)
    return torch.softmax(scores / d_k**0.5 + bias, dim=-1)


def sdpa_is_causal(queries, keys, values):
    """PyTorch's fused kernel with is_causal=True: returns context, not weights."""
    return F.scaled_dot_product_attention(queries, keys, values, is_causal=True)


WEIGHT_METHODS = {
    "masked_fill_before_softmax": masked_fill_before_softmax,
    "zero_after_softmax_then_renormalise": zero_after_softmax_then_renormalise,
    "boolean_allowed_mask": boolean_allowed_mask,
    "additive_mask": additive_mask,
}
