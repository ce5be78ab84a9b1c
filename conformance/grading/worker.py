"""The untrusted side: load one submission and answer the Candidate interface.

Runs in a sandboxed process forked from the zygote.  It only executes the
student's code and serves `LocalCandidate` calls over the private channel,
so the numbers it returns are computed exactly as in-process checks compute
them; every comparison happens in the grader.  Replies carry plain values
and raw arrays only (see `protocol`).

An audit hook (the `import` statement) and a meta-path finder
(`importlib.import_module`) record import attempts of the suite
(`attnspec.*` modules not already loaded) and of the book's package
`llms_from_scratch`: tripwires reported in every reply, beside the
grader's own static scan.  (Code in the same process can evade them; the
static scan and the hidden reference folder are the other two layers.)

Imports torch, numpy, attnspec.candidate / adapter / config / declarations / targets /
notebook only (and nbformat, when the submission is a .ipynb notebook: the
worker converts and runs it, so its errors name the cell).
"""

import sys

import numpy as np
import torch

from ..candidate import CandidateError, LocalCandidate
from ..config import KINDS, Config
from ..targets import TargetError, load_target
from . import protocol

FORBIDDEN = ("attnspec", "llms_from_scratch")


def _memory_error(exc_type, message):
    text = message.lower()
    return exc_type == "MemoryError" or "can't allocate memory" in text or "not enough memory" in text


class Worker:
    """Serves one submission's book classes; one `LocalCandidate` per class."""

    def __init__(self, sock):
        self.sock = sock
        self.flags = []
        self.candidates = {}
        sys.addaudithook(self._audit)
        sys.meta_path.insert(0, self)

    def _note(self, name):
        if isinstance(name, str) and name.split(".")[0] in FORBIDDEN and name not in self.flags and len(self.flags) < 20:
            self.flags.append(name)

    def _audit(self, event, args):
        if event == "import" and args:
            self._note(args[0])

    def find_spec(self, name, path=None, target=None):
        """Meta-path hook: note the name, let the real finders do the finding."""
        self._note(name)
        return None

    def load(self, paths):
        """Import the submission's files; the reply lists the book classes found, or why it failed.

        Only objects with the book's names are served (with the book's
        declarations, decided by the grader); Adapters a student defines are ignored.
        """
        targets = []
        for path in paths:
            try:
                found = load_target(path)
            except TargetError as exc:
                text = str(exc)
                return {"op": "loaded", "ok": False, "error": text[:2000], "exited": "called sys.exit(" in text}
            except BaseException as exc:  # noqa: BLE001 - a student's import may raise anything
                return {"op": "loaded", "ok": False, "error": f"importing raised {type(exc).__name__}: {exc}"[:2000]}
            for label, adapter in found:
                name = label.rpartition(":")[2]
                if name not in KINDS or name in self.candidates:
                    continue
                self.candidates[name] = LocalCandidate(adapter)
                targets.append({"name": name, "file": path, "signature": adapter.signature()})
        return {"op": "loaded", "ok": True, "targets": targets}

    def serve(self):
        while True:
            try:
                header, arrays = protocol.recv(self.sock)
            except protocol.Closed:
                return
            try:
                reply, out = self.dispatch(header, arrays)
            except CandidateError as exc:
                reason = "memory" if _memory_error(exc.exc_type, exc.message) else exc.reason
                reply, out = {"error": [exc.stage, exc.exc_type, exc.message[:2000], reason]}, None
            except BaseException as exc:  # noqa: BLE001 - SystemExit in forward, say
                message = f"called sys.exit({exc.code})" if isinstance(exc, SystemExit) else str(exc)[:2000]
                reason = "memory" if _memory_error(type(exc).__name__, message) else "raised"
                reply, out = {"error": [header.get("op", "?"), type(exc).__name__, message, reason]}, None
            reply["flags"] = self.flags
            _flush()
            protocol.send(self.sock, reply, out)

    def dispatch(self, h, arrays):
        op = h["op"]
        cand = self.candidates[h["target"]]
        for handle in h.get("release", ())[:100000]:  # released since the previous request
            try:
                cand.release(handle)
            except CandidateError:  # nothing to release: the grader only forgets it
                pass
        if op == "build":
            weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w:")} if h.get("load") else None
            handle = cand.build(Config(**h["cfg"]), dtype=h["dtype"], seed=h["seed"], weights=weights)
            if not h.get("forward"):
                return {"handle": handle}, None
            try:  # build_and_forward: the first call too (the grader learns no handle when it fails)
                fw = cand.forward(handle, arrays["x"])
            except BaseException:
                cand.release(handle)
                raise
            return {"handle": handle, "dtype": fw.dtype, "masks": None}, {"y": fw.y}
        if op == "load":
            weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w:")}
            cand.load(h["handle"], weights)
            return {}, None
        if op == "forward":
            fw = cand.forward(h["handle"], arrays["x"], train=h["train"], layout=h["layout"],
                              capture_dropout=h["capture_dropout"], return_input=h["return_input"])
            out = {"y": fw.y}
            if fw.x_after is not None:
                out["x_after"] = fw.x_after
            for i, mask in enumerate(fw.masks or []):
                out[f"mask:{i}"] = np.asarray(mask)
            return {"dtype": fw.dtype, "masks": None if fw.masks is None else len(fw.masks)}, out
        if op == "backward":
            bw = cand.backward(h["handle"], arrays["x"], arrays["grad_out"], train=h["train"])
            return {"param_grads": bw.param_grads}, {"y": bw.y, "grad_x": bw.grad_x}
        if op in ("parameters", "buffers"):
            items = getattr(cand, op)(h["handle"])
            return {"items": [[p.name, list(p.shape), p.trainable] for p in items]}, None
        if op == "reinit":
            cand.reinit(h["handle"], h["seed"])
        elif op == "copy_parameters":
            cand.copy_parameters(h["src"], h["dst"])
        elif op == "release":
            cand.release(h["handle"])
        else:
            raise CandidateError(op, "ProtocolError", f"unknown request {op!r}", reason="interface")
        return {}, None


def _flush():
    """Push the submission's buffered prints into the capture pipes before answering."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the student may have replaced or closed it
            pass


def main(sock, files):
    """Entry point in the forked child, after `sandbox.enter`."""
    torch.set_num_threads(1)
    worker = Worker(sock)
    reply = worker.load(files)
    reply["flags"] = worker.flags
    _flush()
    protocol.send(sock, reply)
    worker.serve()
