"""Hugging Face GPT2Attention, checked through the example adapter in examples/hf_gpt2_attention.py (only when transformers is installed)."""

import importlib.util
import os

REQUIRES = ("transformers",)

_path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "hf_gpt2_attention.py")
_spec = importlib.util.spec_from_file_location("attnspec_example_hf_gpt2", _path)
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)


class HFGPT2Attention(_example.HFGPT2Attention):
    pass
