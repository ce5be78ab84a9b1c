"""simplified_self_attention written with the explicit loops of section 3.3.1 before they are vectorised."""

import torch


def simplified_self_attention(inputs):
    n = inputs.shape[0]
    attn_scores = torch.empty(n, n, dtype=inputs.dtype, device=inputs.device)
    for i, x_i in enumerate(inputs):
        for j, x_j in enumerate(inputs):
            attn_scores[i, j] = torch.dot(x_i, x_j)
    attn_weights = torch.softmax(attn_scores, dim=-1)
    context = torch.zeros_like(inputs)
    for i in range(n):
        for j in range(n):
            context[i] += attn_weights[i, j] * inputs[j]
    return context
