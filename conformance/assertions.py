"""The single assertion vocabulary of the properties, with one message shape.

Every check raises `ClauseViolation`, carrying the clause IDs it judges, a
plain sentence of diagnosis, what was expected and what was observed.  The
comparisons run here, in NumPy, on numbers the candidate returned: nothing
the code under test provides (its allclose, its tensors) is trusted.
"""

import numpy as np


class ClauseViolation(AssertionError):
    def __init__(self, clauses, message, expected="", observed="", positions=None):
        super().__init__(message)
        self.clauses = tuple(clauses)
        self.message = message
        self.expected = expected
        self.observed = observed
        self.positions = positions


def _where(diff):
    """Index of the largest entry of `diff`, as a list."""
    idx = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
    return [int(i) for i in idx]


def describe_position(pos, batched=True):
    if batched and len(pos) == 3:
        return f"batch {pos[0]}, position {pos[1]}, feature {pos[2]}"
    if len(pos) == 2:
        return f"position {pos[0]}, feature {pos[1]}"
    return f"index {pos}"


def max_error(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    diff = np.abs(actual - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max(initial=0.0)), (_where(diff) if diff.size else [])


def worst_excess(actual, expected, allowed):
    """(ratio, error, allowed there, position) of the element where |actual - expected| / allowed is largest.

    `allowed` is a scalar or an element-wise array (the error model's bound):
    a ratio above 1 is a violation.  NaN where a number is expected counts as
    an infinite error; an allowance of 0 (every term exactly zero) admits only
    an exact 0.
    """
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    allowed = np.broadcast_to(np.asarray(allowed, float), actual.shape)
    diff = np.abs(actual - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    if not diff.size:
        return 0.0, 0.0, 0.0, []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a huge ratio is just a violation
        ratio = np.where(diff == 0, 0.0, diff / allowed)
    largest = ratio.max()
    if np.isnan(largest):  # a NaN allowance: the largest ratio elsewhere decides, as nanargmax finds it
        pos = _where(ratio)
    else:
        pos = [int(i) for i in np.unravel_index(int(ratio.argmax()), ratio.shape)]
    at = tuple(pos)
    return float(ratio[at]), float(diff[at]), float(allowed[at]), pos


def within(actual, expected, allowed):
    """Whether every element of `actual` is within `allowed` of `expected`."""
    return worst_excess(actual, expected, allowed)[0] <= 1.0


def assert_shape(clauses, what, shape, expected):
    if tuple(shape) != tuple(expected):
        raise ClauseViolation(
            clauses,
            f"{what} has shape {tuple(shape)}, the spec requires {tuple(expected)}",
            expected=str(tuple(expected)),
            observed=str(tuple(shape)),
        )


def assert_dtype(clauses, what, dtype, expected):
    if dtype != expected:
        raise ClauseViolation(
            clauses, f"{what} has dtype {dtype} for {expected} input; the dtype must be preserved",
            expected=expected, observed=dtype,
        )


def assert_finite(clauses, what, y, batched=True):
    bad = ~np.isfinite(np.asarray(y, float))
    if bad.any():
        pos = [int(i) for i in np.argwhere(bad)[0]]
        value = np.asarray(y, float)[tuple(pos)]
        raise ClauseViolation(
            clauses,
            f"{what} is {value} at {describe_position(pos, batched)}: finite inputs must give finite outputs",
            expected="finite values", observed=f"{int(bad.sum())} non-finite values", positions=pos,
        )


def assert_close(clauses, what, actual, expected, allowed, batched=True, hint=""):
    """`actual` within `allowed` (a scalar or element-wise bound) of `expected`; names the worst position.

    Returns the worst ratio error / allowed (at most 1 when it passes).
    """
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    if actual.shape != expected.shape:
        assert_shape(clauses, what, actual.shape, expected.shape)
    ratio, err, bound, pos = worst_excess(actual, expected, allowed)
    if ratio > 1.0:
        at = describe_position(pos, batched) if pos else ""
        got = actual[tuple(pos)] if pos else actual
        want = expected[tuple(pos)] if pos else expected
        raise ClauseViolation(
            clauses,
            (hint + " " if hint else "") + f"{what}: |error| {err:.3g} at {at} (got {got:.6g}, expected {want:.6g}), allowed {bound:.3g} there",
            expected=f"{want:.6g} (within {bound:.3g})",
            observed=f"{got:.6g} (error {err:.3g})",
            positions=pos,
        )
    return ratio
