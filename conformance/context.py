"""What a property sees of one generated example: the candidate and helpers.

The context draws cases from the public strategies (constrained by what the
target declares), builds and releases modules, loads canonical weights,
and computes the oracle and the plain-implementation baseline in the
suite's own process.  It records the drawn case, so that the engine can
report the shrunk counterexample, and which conditions the example reached.
"""

import functools

import numpy as np

from . import baseline, strategies, tolerance, weights
from .assertions import ClauseViolation, assert_close, worst_excess
from .candidate import CandidateError, LocalCandidate
from .memo import remembered


class NotApplicable(Exception):
    """Raised by a property when this target cannot be judged by it (reported as skipped)."""


@functools.cache
def reference_candidate(kind):
    """The plain book implementation, used as the NUM-1 baseline in the same dtype."""
    from attnspec import reference
    from .adapter import BookAdapter, FunctionAdapter

    if kind == "simplified_self_attention":
        return LocalCandidate(FunctionAdapter(reference.simplified_self_attention))
    return LocalCandidate(BookAdapter(getattr(reference, kind), kind))


@functools.lru_cache(maxsize=512)
def _cases(kind, options):
    """Strategies are built once per option set: composite strategies are costly to create."""
    return strategies.cases(kind, **dict(options))


def runs_at_full_length(candidate, cfg, batch, dtype):
    """Whether `cfg` can be built and called with num_tokens == context_length (CAUSAL-5)."""
    try:
        handle = candidate.build(cfg, dtype=dtype)
        try:
            candidate.forward(handle, np.zeros((batch, cfg.context_length, cfg.d_in)))
        finally:
            candidate.release(handle)
    except CandidateError:
        return False
    return True


def conditions(case):
    """The corner conditions a case reaches, for the generator-reach report."""
    cfg = case.cfg
    reached = {
        "num_heads > 1" if cfg.heads > 1 else "num_heads = 1",
        "batch > 1" if case.batch > 1 else "batch = 1",
        "d_in != d_out" if cfg.d_in != cfg.d_out else "d_in = d_out",
        "head_dim = 1" if cfg.head_dim == 1 else "head_dim > 1",
        "num_tokens = 1" if case.num_tokens == 1 else "num_tokens > 1",
    }
    if cfg.causal:
        reached.add("num_tokens < context_length" if case.num_tokens < cfg.context_length else "num_tokens = context_length")
    if cfg.qkv_bias:
        reached.add("qkv_bias")
    return reached


def _canonical(case, dtype, sharpness, salt):
    """Fresh canonical weights for the case's module ({} for the simplified function: it has none)."""
    if case.cfg.kind == "simplified_self_attention":
        return {}
    return weights.canonical_weights(case.cfg, case.rng(1000 + salt), dtype, sharpness)


class Context:
    def __init__(self, candidate, info, data, kind, profile="default"):
        self.profile = profile
        self.cand = candidate
        self.info = info
        self.data = data
        self.kind = kind
        self.notes = {}
        self.reached = set()
        self._handles = []
        self._configs = {}

    # -- drawing -----------------------------------------------------------
    def draw(self, strategy, label):
        value = self.data.draw(strategy, label=label)
        self.notes[label] = value
        return value

    def case(self, **options):
        """Draw a case for this target's kind, within what the target declares."""
        info = self.info
        opts = dict(square_only=info.get("square_only", False), qkv_bias=tuple(info.get("qkv_bias_options", (False, True))), dtype=self.default_dtype)
        if info.get("max_heads"):
            opts["max_heads"] = info["max_heads"]
        opts.update(options)
        case = self.data.draw(_cases(self.kind, tuple(sorted(opts.items()))), label="case")
        self.notes["case"] = case  # described (Case.describe) only when the engine reports it
        self.reached |= conditions(case)
        return case

    def note(self, **values):
        self.notes.update(values)

    def reach(self, *conds):
        self.reached.update(conds)

    def not_applicable(self, reason):
        raise NotApplicable(reason)

    @property
    def default_dtype(self):
        """float32 unless the target declares it cannot take it (a float64-only adapter)."""
        declared = self.info.get("dtypes") or ("float32",)
        return "float32" if "float32" in declared else declared[0]

    @property
    def value_dtypes(self):
        """The dtypes value checks draw from: float32 and float64 where declared, else the default."""
        declared = self.info.get("dtypes") or ("float32", "float64")
        return [d for d in declared if d in ("float32", "float64")] or [self.default_dtype]

    @property
    def precise_dtype(self):
        """The most precise declared dtype: statistics over many calls are judged there."""
        declared = self.info.get("dtypes") or ("float32", "float64")
        for d in ("float64", "float32", "float16", "bfloat16"):
            if d in declared:
                return d
        return self.default_dtype

    # -- the candidate -------------------------------------------------------
    def build(self, cfg, dtype=None, seed=0, weights=None):
        handle = self.cand.build(cfg, dtype=dtype or self.default_dtype, seed=seed, weights=weights)
        self._handles.append(handle)
        self._configs[handle] = cfg
        return handle

    def load(self, handle, w):
        self.cand.load(handle, w)

    def build_loaded(self, case, dtype=None, sharpness=2.0, salt=0):
        """Build the case's module and load fresh canonical weights: (handle, weights)."""
        dtype = dtype or case.dtype
        w = _canonical(case, dtype, sharpness, salt)
        return self.build(case.cfg, dtype, weights=w or None), w

    def inputs(self, case, salt=0, dtype=None, scale=None):
        return weights.inputs(case.input_shape, case.rng(salt), dtype or case.dtype, case.scale if scale is None else scale)

    def forward(self, handle, x, **kw):
        """The candidate's output; one of the wrong shape is reported as such, once (SHAPE-3)."""
        return self._shaped(self.cand.forward(handle, x, **kw), self._configs.get(handle), x)

    def call_built(self, cfg, x, dtype=None, seed=0, weights=None):
        """`build` and a first `forward` on x (eval mode) in one step, one request to a worker: (handle, output).

        For a property that builds a module and calls it straight away, with
        no try around either: a failed build still raises with stage "build".
        """
        handle, out = self.cand.build_and_forward(cfg, x, dtype=dtype or self.default_dtype, seed=seed, weights=weights)
        self._handles.append(handle)
        self._configs[handle] = cfg
        return handle, self._shaped(out, cfg, x)

    def call_loaded(self, case, x, dtype=None, sharpness=2.0, salt=0):
        """`build_loaded` and a first `forward` on x in one step (see call_built): (handle, weights, output)."""
        dtype = dtype or case.dtype
        w = _canonical(case, dtype, sharpness, salt)
        handle, out = self.call_built(case.cfg, x, dtype, weights=w or None)
        return handle, w, out

    @staticmethod
    def _shaped(out, cfg, x):
        if cfg is not None:
            want = tuple(np.shape(x)[:-1]) + (cfg.out_features,)
            if tuple(out.y.shape) != want:
                raise CandidateError("forward", "WrongShape", f"returned shape {tuple(out.y.shape)} for an input of shape {tuple(np.shape(x))}; the spec requires {want}")
        return out

    def release_all(self):
        for h in self._handles:
            try:
                self.cand.release(h)
            except CandidateError:
                pass
        self._handles.clear()

    # -- the suite's own numbers ----------------------------------------------
    def oracle(self, cfg, w, x, keep=None):
        return weights.oracle_output(cfg, w, x, keep)

    def baselines(self, cfg, w, x, dtype):
        """Plain implementations' outputs in `dtype` (or the declared internal precision)."""
        dtype = self.info.get("internal_precision") or dtype
        return [baseline.plain_attention(cfg, w, x, dtype, prescale) for prescale in (False, True)]

    def bound(self, cfg, w, x, dtype=None, keep=None):
        """E of NUM-4: how far a correct implementation's output on x may be rounded, element-wise."""
        dt = self.info.get("internal_precision") or dtype or self.default_dtype
        return tolerance.rounding_bound(cfg, w, x, dt, keep)

    def budget(self, golden, cfg, w, x, dtype):
        """NUM-1's element-wise allowance for an output compared with `golden`."""
        dt = self.info.get("internal_precision") or dtype
        bound = self.bound(cfg, w, x, dtype)
        return np.maximum.reduce([tolerance.allowed_error(golden, base, bound, dt) for base in self.baselines(cfg, w, x, dtype)])

    def expect_invariant(self, clauses, what, a, b, bound, batched=True):
        """NUM-4: two outputs equal in exact arithmetic agree within `bound` (E(x1) + E(x2) there)."""
        try:
            assert_close(clauses, what, a, b, bound, batched)
        except ClauseViolation as v:
            ratio = worst_excess(a, b, bound)[0]
            if np.isfinite(ratio) and ratio < 1000:
                v.clauses = v.clauses + ("NUM-4",)
                v.message += " (a small drift: the invariance holds only approximately)"
            raise

    def reference_backward(self, cfg, w, x, grad_out, dtype=None):
        """The plain book implementation's input gradient, in the input's precision."""
        return _reference_input_gradient(cfg, w, x, grad_out, self.info.get("internal_precision") or dtype or self.default_dtype)


@remembered
def _reference_input_gradient(cfg, w, x, grad_out, dtype):
    ref = reference_candidate(cfg.kind)
    h = ref.build(cfg, dtype=dtype)
    try:
        ref.load(h, weights.round_to_all(w, dtype))
        return ref.backward(h, weights.round_to(x, dtype), grad_out).grad_x
    finally:
        ref.release(h)
