"""The only door to the code under test.

Properties talk to an implementation through `Candidate`: build a module for
a configuration, load canonical weights, run forward or backward, describe
parameters.  Everything crosses as NumPy arrays and plain values, so the same
interface can be served by another process (`attnspec.grading.worker`); the
suite compares the numbers in its own code and trusts nothing else.

`LocalCandidate` serves the interface in this process, for trusted code.
This module imports torch, numpy and attnspec.declarations only.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .adapter import Adapter, WeightMappingError
from .config import Config
from .declarations import switch_off_output_dropout

DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
LAYOUTS = ("contiguous", "transposed", "strided")


class CandidateError(Exception):
    """The code under test raised, returned something unusable, or died.

    `stage` is what the suite asked for (build, load, forward, backward, ...),
    `exc_type` the exception's class name, `reason` a short status word for
    the report: raised, interface, mapping (weights cannot be copied in),
    timeout, crashed, memory, or not_run (an isolated worker gave up earlier).
    """

    def __init__(self, stage, exc_type, message, reason="raised"):
        super().__init__(f"{stage}: {exc_type}: {message}")
        self.stage = stage
        self.exc_type = exc_type
        self.message = message
        self.reason = reason

    def plain(self):
        if self.reason == "interface":
            return f"{self.stage}() {self.message}"
        if self.reason in ("timeout", "crashed", "memory"):
            return f"the implementation {self.message} during {self.stage}()"
        if self.reason == "not_run":
            return f"{self.stage}() was not run: {self.message}"
        return f"the implementation raised {self.exc_type} during {self.stage}(): {self.message}"


class WrongShape(Exception):
    """The output's shape is not the one the spec requires for the input (SHAPE-3)."""


@dataclass
class Forward:
    y: np.ndarray  # float64 copy of the output (float32 precision for half dtypes)
    dtype: str
    masks: list = None  # dropout keep-masks seen, when asked for
    x_after: np.ndarray = None  # the input as it was after the call, when asked for


@dataclass
class Backward:
    y: np.ndarray
    grad_x: np.ndarray
    param_grads: dict = field(default_factory=dict)  # name -> max |grad|, or None when no grad


@dataclass
class ParamInfo:
    name: str
    shape: tuple
    trainable: bool


class Candidate:
    """The narrow interface properties use.  See `LocalCandidate` for semantics."""

    info: dict

    def build(self, cfg: Config, dtype="float32", seed=0, weights=None) -> int: ...  # weights: then load them
    def load(self, handle, weights: dict) -> None: ...

    def build_and_forward(self, cfg: Config, x, dtype="float32", seed=0, weights=None):
        """`build` then one `forward` on x (eval mode, contiguous): (handle, Forward).

        The same two steps, with the same errors (a failed build raises with
        stage "build"); a worker serves them in one request instead of two.
        """
        handle = self.build(cfg, dtype=dtype, seed=seed, weights=weights)
        try:
            return handle, self.forward(handle, x)
        except BaseException:
            self.release(handle)  # the caller never learns this handle
            raise

    def forward(self, handle, x, *, train=False, layout="contiguous", capture_dropout=False, return_input=False) -> Forward: ...
    def backward(self, handle, x, grad_out, *, train=False) -> Backward: ...
    def parameters(self, handle) -> list: ...
    def buffers(self, handle) -> list: ...
    def reinit(self, handle, seed) -> None: ...
    def copy_parameters(self, src, dst) -> None: ...
    def declared_parameter_count(self, cfg: Config): ...
    def device_probe(self, cfg: Config, input_shape, device="meta") -> dict: ...
    def release(self, handle) -> None: ...
    def close(self) -> None: ...


def dtype_name(dtype):
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    return str(dtype).replace("torch.", "")


def _arrange(x, layout):
    """The same values as `x` in a contiguous, transposed or strided layout (SHAPE-7)."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "transposed":
        if x.dim() == 3:
            return x.transpose(0, 1).contiguous().transpose(0, 1)
        return x.T.contiguous().T
    if layout == "strided":
        wide = torch.full(x.shape[:-1] + (2 * x.shape[-1],), float("nan"), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    raise ValueError(f"unknown layout {layout!r}")


def fresh_tensor(array, dtype):
    """A new tensor of `dtype` holding `array`'s values: never a view of the suite's own arrays.

    The code under test may write into its input or keep a weight tensor it is
    given; a view would let it change the numbers the suite compares with.
    """
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=DTYPES[dtype])


def _to_numpy(t):
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t.numpy().astype(np.float64, copy=True)


class _DropoutRecorder:
    """Records the keep-masks that dropout draws (bernoulli on CPU), by dispatch interception."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self
        self.masks = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                name = func.overloadpacket.__name__
                if name in ("bernoulli_", "bernoulli"):
                    recorder.masks.append(_to_numpy(out))
                elif name == "native_dropout":
                    recorder.masks.append(_to_numpy(out[1]))
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def _short(exc, limit=300):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LocalCandidate(Candidate):
    """Serves the interface by calling an `Adapter` in this process."""

    def __init__(self, adapter: Adapter):
        self.adapter = adapter
        self.info = adapter.describe()
        self._modules = {}
        self._next = 0

    # -- helpers ---------------------------------------------------------
    def _call(self, stage, fn, *args):
        try:
            return fn(*args)
        except WeightMappingError as exc:
            raise CandidateError(stage, "WeightMappingError", str(exc), reason="mapping") from None
        except Exception as exc:  # the code under test may raise anything
            raise CandidateError(stage, type(exc).__name__, _short(exc)) from None

    def _entry(self, handle):
        return self._modules[handle]

    def _output(self, out, stage):
        if type(out) is not torch.Tensor:
            kind = type(out).__name__
            hint = " (a tuple: return only the context tensor)" if isinstance(out, tuple) else ""
            raise CandidateError(stage, kind, f"returned a {kind}, not a plain torch.Tensor{hint}", reason="interface")
        return out

    # -- the interface ---------------------------------------------------
    def build(self, cfg, dtype="float32", seed=0, weights=None):
        """A new module for `cfg`, and with `weights` given, those loaded into it (one step, as `load`)."""
        # the CPU generator only: torch.manual_seed also queues lazy seeding of every
        # accelerator backend, which costs more than building the module
        torch.default_generator.manual_seed(seed)
        module = self._call("build", self.adapter.build, cfg)
        if isinstance(self.info.get("output_dropout"), str):  # declared: the checks judge attention dropout alone
            self._call("build", switch_off_output_dropout, module, self.info["output_dropout"])
        module = self._call("build", self.adapter.to_dtype, module, DTYPES[dtype])
        self._next += 1
        self._modules[self._next] = (module, cfg, dtype)
        if weights is not None:
            try:
                self.load(self._next, weights)
            except CandidateError:
                self.release(self._next)
                raise
        return self._next

    def load(self, handle, weights):
        module, cfg, dtype = self._entry(handle)
        tensors = {k: fresh_tensor(v, dtype) for k, v in weights.items()}
        self._call("load", self.adapter.load, module, tensors, cfg)

    def _input(self, x, dtype, layout):
        return _arrange(fresh_tensor(x, dtype), layout)

    def forward(self, handle, x, *, train=False, layout="contiguous", capture_dropout=False, return_input=False):
        module, cfg, dtype = self._entry(handle)
        xt = self._input(x, dtype, layout)
        self._call("train" if train else "eval", self.adapter.set_training, module, train)
        recorder = _DropoutRecorder() if capture_dropout else None

        def run():
            with torch.no_grad():
                if recorder is None:
                    return self.adapter.forward(module, xt)
                with recorder:
                    return self.adapter.forward(module, xt)

        out = self._output(self._call("forward", run), "forward")
        return Forward(
            y=_to_numpy(out),
            dtype=dtype_name(out.dtype),
            masks=recorder.masks if recorder else None,
            x_after=_to_numpy(xt) if return_input else None,
        )

    def backward(self, handle, x, grad_out, *, train=False):
        module, cfg, dtype = self._entry(handle)
        xt = self._input(x, dtype, "contiguous").requires_grad_(True)
        self._call("train" if train else "eval", self.adapter.set_training, module, train)
        params = self._call("parameters", self.adapter.named_parameters, module)
        for _, p in params:
            p.grad = None

        def run():
            out = self._output(self.adapter.forward(module, xt), "forward")
            if tuple(out.shape) != tuple(np.shape(grad_out)):
                raise WrongShape(f"returned shape {tuple(out.shape)} for an input of shape {tuple(xt.shape)}; the spec requires {tuple(np.shape(grad_out))}")
            g = torch.from_numpy(np.asarray(grad_out, dtype=np.float64)).to(out.dtype)
            (out * g).sum().backward()
            return out

        out = self._call("backward", run)
        grads = {}
        for name, p in params:
            if p.requires_grad:
                grads[name] = None if p.grad is None else float(p.grad.detach().abs().max().to(torch.float64))
        grad_x = np.zeros(np.shape(x)) if xt.grad is None else _to_numpy(xt.grad)
        return Backward(y=_to_numpy(out), grad_x=grad_x, param_grads=grads)

    def parameters(self, handle):
        module, _, _ = self._entry(handle)
        params = self._call("parameters", self.adapter.named_parameters, module)
        return [ParamInfo(n, tuple(p.shape), bool(p.requires_grad)) for n, p in params]

    def buffers(self, handle):
        module, _, _ = self._entry(handle)
        bufs = self._call("buffers", self.adapter.named_buffers, module)
        return [ParamInfo(n, tuple(b.shape), False) for n, b in bufs]

    def reinit(self, handle, seed):
        """Overwrite every parameter with N(0, 1) values, as a careless init would."""
        module, _, _ = self._entry(handle)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in self._call("parameters", self.adapter.named_parameters, module):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype))

    def copy_parameters(self, src, dst):
        a, _, _ = self._entry(src)
        b, _, _ = self._entry(dst)
        pa = dict(self._call("parameters", self.adapter.named_parameters, a))
        with torch.no_grad():
            for name, p in self._call("parameters", self.adapter.named_parameters, b):
                if name in pa and pa[name].shape == p.shape:
                    p.copy_(pa[name])

    def declared_parameter_count(self, cfg):
        """The adapter's own count for its layout (PARAM-6), or None for the book's formula."""
        count = self._call("parameter_count", self.adapter.parameter_count, cfg)
        return None if count is None else int(count)

    def device_probe(self, cfg, input_shape, device="meta"):
        """Build on the CPU, move to `device`, run on an input there (SHAPE-6).

        Returns {"ok", "device", "error"}; the suite decides what an error means.
        """
        try:
            module = self.adapter.build(cfg)
            module = module.to(device) if isinstance(module, torch.nn.Module) else module
            self.adapter.set_training(module, False)
            x = torch.empty(tuple(input_shape), device=device)
            with torch.no_grad():
                out = self.adapter.forward(module, x)
            return {"ok": True, "device": str(getattr(out, "device", "?")), "error": ""}
        except Exception as exc:
            return {"ok": False, "device": "", "error": f"{type(exc).__name__}: {_short(exc)}"}

    def release(self, handle):
        self._modules.pop(handle, None)

    def close(self):
        self._modules.clear()
