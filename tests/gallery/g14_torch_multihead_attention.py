"""torch.nn.MultiheadAttention, checked through the example adapter in examples/torch_multihead_attention.py."""

import importlib.util
import os

_path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "torch_multihead_attention.py")
_spec = importlib.util.spec_from_file_location("attnspec_example_torch_mha", _path)
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)


class TorchMultiheadAttention(_example.TorchMultiheadAttention):
    pass
