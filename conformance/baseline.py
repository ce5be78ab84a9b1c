"""The plain implementation NUM-1 measures errors against, in torch, from canonical weights.

The book's forward pass written as one function of the canonical weights
(no module to build), run in the candidate's dtype, in two orders of
operations: scores scaled after the product (the book) and queries scaled
first.  NUM-1 allows a candidate K times the worse of the two errors.  It
runs torch's kernels on purpose: a NumPy stand-in rounds like the NumPy
oracle and would understate what a correct torch implementation costs.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .candidate import DTYPES
from .memo import remembered


@remembered
def plain_attention(cfg, w, x, dtype, prescale=False):
    """The book's algorithm for `cfg` in `dtype`; returns float64 NumPy."""
    dt = DTYPES[dtype]
    xt = torch.tensor(np.asarray(x, np.float64), dtype=dt)
    with torch.no_grad():
        if cfg.kind == "simplified_self_attention":
            return torch.softmax(xt @ xt.T, dim=-1).matmul(xt).to(torch.float64).numpy()
        t = {k: torch.tensor(np.asarray(v, np.float64), dtype=dt) for k, v in w.items()}
        unbatched = xt.dim() == 2
        if unbatched:
            xt = xt.unsqueeze(0)
        b, T, _ = xt.shape
        q, k, v = (F.linear(xt, t[f"W_{r}"], t.get(f"b_{r}")) for r in ("query", "key", "value"))
        H = cfg.heads
        hd = q.shape[-1] // H
        q, k, v = (z.view(b, T, H, hd).transpose(1, 2) for z in (q, k, v))
        if prescale:
            q = q / math.sqrt(hd)
        scores = q @ k.transpose(2, 3)
        if cfg.causal:
            scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1), -torch.inf)
        weights = torch.softmax(scores if prescale else scores / math.sqrt(hd), dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(b, T, H * hd)
        if "W_out" in t:
            context = F.linear(context, t["W_out"], t["b_out"])
        if unbatched:
            context = context[0]
        return context.to(torch.float64).numpy()
