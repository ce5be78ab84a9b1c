"""The book's chapter-3 attention classes, written to be read beside the book.

`simplified`, `self_attention`, `causal` and `multihead` follow sections 3.3 to
3.6 in order; `masking` collects the equivalent ways of applying the causal
mask (clause CAUSAL-4); `oracle` is an independent float64 NumPy statement of
the same mathematics, used to test everything else.
"""

from .simplified import simplified_self_attention
from .self_attention import SelfAttention_v1, SelfAttention_v2
from .causal import CausalAttention
from .multihead import MultiHeadAttentionWrapper, MultiHeadAttention

__all__ = [
    "simplified_self_attention",
    "SelfAttention_v1",
    "SelfAttention_v2",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
]
