"""Parameter-count formulas of the spec (PARAM-1 to PARAM-5), as code."""

GPT2_SMALL = dict(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
GPT2_SMALL_PARAMETERS = {False: 2_360_064, True: 2_362_368}


def book_parameter_count(cfg):
    """The spec's count for a configuration; the formulas themselves live beside the oracle."""
    from attnspec.reference.oracle import parameter_count

    return parameter_count(cfg.kind, cfg.d_in, cfg.d_out, cfg.num_heads, cfg.qkv_bias)
