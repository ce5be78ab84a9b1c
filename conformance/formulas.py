"""Parameter-count formulas of the spec (PARAM-1 to PARAM-5), as code."""

GPT2_SMALL = dict(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
GPT2_SMALL_PARAMETERS = {False: 2_360_064, True: 2_362_368}


def book_parameter_count(cfg):
    projections = 3 * cfg.d_in * cfg.d_out + (3 * cfg.d_out if cfg.qkv_bias else 0)
    if cfg.kind == "SelfAttention_v1":
        return 3 * cfg.d_in * cfg.d_out
    if cfg.kind in ("SelfAttention_v2", "CausalAttention"):
        return projections
    if cfg.kind == "MultiHeadAttentionWrapper":
        return cfg.num_heads * projections
    if cfg.kind == "MultiHeadAttention":
        return projections + cfg.d_out * cfg.d_out + cfg.d_out
    return 0
