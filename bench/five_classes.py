"""A five-class submission for the benchmarks: the reference's SelfAttention_v1, v2, CausalAttention,
MultiHeadAttentionWrapper and MultiHeadAttention in one file, as a student would hand them in.

`write(path, bug=...)` removes MultiHeadAttention's causal mask ("mask") or its
scaling ("scale"), so a batch has failures to report as well.
"""

import inspect

from attnspec.reference import causal, multihead, self_attention

CLASSES = (self_attention.SelfAttention_v1, self_attention.SelfAttention_v2, causal.CausalAttention,
           multihead.MultiHeadAttentionWrapper, multihead.MultiHeadAttention)
BUGS = {
    "mask": ("attn_scores.masked_fill_(mask_bool, -torch.inf)", "pass"),
    "scale": ("attn_scores / keys.shape[-1] ** 0.5", "attn_scores"),
}


def source(bug=None):
    last = inspect.getsource(CLASSES[-1])
    if bug is not None:
        old, new = BUGS[bug]
        assert old in last, "the reference changed: update bench/five_classes.py"
        last = last.replace(old, new)
    body = "\n\n".join(inspect.getsource(c) for c in CLASSES[:-1])
    return f"import torch\nimport torch.nn as nn\n\n\n{body}\n\n{last}"


def write(path, bug=None, comment=""):
    with open(path, "w") as fh:
        fh.write(source(bug) + (f"\n# {comment}\n" if comment else ""))
    return path
