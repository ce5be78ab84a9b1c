"""The spec's error model (NUM-1, NUM-2, NUM-4) in one place.

An implementation in dtype dt passes a comparison with the float64 oracle
when  max|impl - golden| <= K * max|base - golden| + floor,  where `base` is
the plain book implementation run in dt on the same rounded values: the
error a straightforward implementation makes is the yardstick, not a fixed
atol that is too strict for large inputs and too loose for float64.
"""

import numpy as np
import torch

from .candidate import DTYPES

K = 4.0
FLOOR_MIN = {"float64": 1e-15, "float32": 1e-7, "float16": 1e-4, "bfloat16": 8e-4}
METAMORPHIC_FACTOR = 16.0


def eps(dtype):
    return float(torch.finfo(DTYPES[dtype]).eps)


FLOOR_ULPS = 16.0


def rounding_floor(golden, dtype):
    """The error no comparison can resolve: rounding at the golden values' magnitude.

    Twice the representational rounding of golden in dtype, and at least
    FLOOR_ULPS units of eps at the largest |golden| (when the plain baseline
    happens to round exactly like the oracle, its error says nothing about
    what another correct order of operations costs).
    """
    g = torch.from_numpy(np.asarray(golden, dtype=np.float64)).to(DTYPES[dtype])
    shifted = ((g + 0.3) - 0.3).to(torch.float64).numpy()
    spread = float(np.max(np.abs(shifted - g.to(torch.float64).numpy()), initial=0.0))
    finite = np.asarray(golden)[np.isfinite(golden)]
    magnitude = max(1.0, float(np.max(np.abs(finite), initial=0.0)))
    return max(2.0 * spread, FLOOR_ULPS * eps(dtype) * magnitude, FLOOR_MIN[dtype])


def allowed_error(golden, base, dtype):
    """NUM-1's bound for an output compared with `golden`, given the base output."""
    base_err = float(np.max(np.abs(np.asarray(base) - golden), initial=0.0))
    if not np.isfinite(base_err):
        base_err = 0.0
    return K * base_err + rounding_floor(golden, dtype)


def metamorphic_tolerance(y, dtype):
    """NUM-4: how far two outputs that must be equal may drift apart."""
    finite = np.asarray(y)[np.isfinite(y)]
    scale = max(1.0, float(np.max(np.abs(finite), initial=0.0)))
    return METAMORPHIC_FACTOR * eps(dtype) * scale


def gradient_floor(reference_grad, direction, dtype):
    """IFACE-7's floor for a directional derivative: sqrt(eps) * |grad| * |u|.

    Fused kernels compute the softmax backward as P * (dP - D) with D summed
    separately, so a gradient that is exactly zero in exact arithmetic (one
    visible key, say) comes back as cancellation noise scaled by |q| and |k|.
    The square root of eps leaves room for that and still sees a detached
    weight or a stale cache, which change gradients by O(1).
    """
    norm = float(np.linalg.norm(np.ravel(reference_grad)) * np.linalg.norm(np.ravel(direction)))
    return float(np.sqrt(eps(dtype))) * max(1.0, norm)
