"""One configuration of an attention module, in the book's constructor terms."""

from dataclasses import asdict, dataclass, replace

KINDS = (
    "simplified_self_attention",
    "SelfAttention_v1",
    "SelfAttention_v2",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
)
UNBATCHED_KINDS = ("simplified_self_attention", "SelfAttention_v1", "SelfAttention_v2")
CAUSAL_KINDS = ("CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention")
TRAINABLE_KINDS = KINDS[1:]
DROPOUT_KINDS = CAUSAL_KINDS
MULTIHEAD_KINDS = ("MultiHeadAttentionWrapper", "MultiHeadAttention")
BIAS_KINDS = ("SelfAttention_v2",) + CAUSAL_KINDS


@dataclass(frozen=True)
class Config:
    """The constructor arguments of one module, whatever its kind.

    Fields a kind does not take (context_length for SelfAttention_v2, say)
    are carried anyway and ignored by that kind's constructor.
    """

    kind: str
    d_in: int
    d_out: int
    context_length: int = 1
    dropout: float = 0.0
    num_heads: int = 1
    qkv_bias: bool = False

    @property
    def batched(self):
        return self.kind not in UNBATCHED_KINDS

    @property
    def causal(self):
        return self.kind in CAUSAL_KINDS

    @property
    def heads(self):
        """Number of attention heads in the canonical (oracle) view."""
        return self.num_heads if self.kind in MULTIHEAD_KINDS else 1

    @property
    def head_dim(self):
        if self.kind == "MultiHeadAttention":
            return self.d_out // self.num_heads
        return self.d_out

    @property
    def out_features(self):
        if self.kind == "MultiHeadAttentionWrapper":
            return self.num_heads * self.d_out
        if self.kind == "simplified_self_attention":
            return self.d_in
        return self.d_out

    @property
    def projection_width(self):
        """Rows of the canonical query/key/value matrices."""
        return self.out_features

    def with_(self, **changes):
        return replace(self, **changes)

    def as_dict(self):
        return asdict(self)

    def constructor_call(self):
        """The call that builds this configuration with the book's signature."""
        k = self.kind
        bias = f", qkv_bias={self.qkv_bias}" if self.qkv_bias else ""
        if k == "SelfAttention_v1":
            return f"{k}({self.d_in}, {self.d_out})"
        if k == "SelfAttention_v2":
            return f"{k}({self.d_in}, {self.d_out}{bias})"
        if k == "CausalAttention":
            return f"{k}({self.d_in}, {self.d_out}, {self.context_length}, {self.dropout}{bias})"
        if k in MULTIHEAD_KINDS:
            return (
                f"{k}({self.d_in}, {self.d_out}, {self.context_length}, {self.dropout}, "
                f"num_heads={self.num_heads}{bias})"
            )
        return f"{k}(x)"
