"""The grader's side of a worker: `RemoteCandidate` and the session behind it.

`RemoteCandidate` has exactly `LocalCandidate`'s methods and returns the same
dataclasses; each call is one request on the worker's private channel,
answered by the `LocalCandidate` running there.  Every reply is validated
before it becomes a value, and nothing about the worker is trusted beyond
those numbers: the declarations properties read (`info`) are the book's
defaults for the class's kind, computed here; only its signature text comes
from the worker, as data for IFACE-1.

`WorkerSession` owns one submission's worker: the per-call and
per-submission timeouts (enforced here by killing the worker's process
group), bounded restarts after a death, and the bounded capture of its
stdout and stderr, which is never parsed.

Restart policy: when the worker dies or hangs, the call in flight raises
`CandidateError(reason="crashed"/"timeout"/"memory")`, so that property
reports the failure as its clause's.  The next call starts a fresh worker
(at most `max_restarts` times per submission, and never past the
submission's deadline); modules built by the dead worker are lost, and
calls on them raise "lost".  Once restarts or time run out, every call
raises at once with reason "not_run", which the grader turns into
`not_checked`.
"""

import os
import select
import signal
import threading
import time

import numpy as np

from ..adapter import BookAdapter, FunctionAdapter
from ..candidate import Backward, Candidate, CandidateError, Forward, ParamInfo
from . import protocol

REASONS = ("raised", "interface", "mapping", "timeout", "crashed", "memory")
OUTPUT_CAP = 64 << 10


def _signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class Capture:
    """Drains one stream into a bounded buffer so a flood never blocks the worker."""

    def __init__(self, cap=OUTPUT_CAP):
        self.cap = cap
        self.head = bytearray()
        self.total = 0
        self._threads = []

    def attach(self, fd):
        thread = threading.Thread(target=self._drain, args=(fd,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _drain(self, fd):
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                self.total += len(chunk)
                room = self.cap - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
        except OSError:
            pass
        finally:
            os.close(fd)

    def text(self):
        for thread in self._threads:
            thread.join(2)
        text = self.head.decode("utf-8", errors="replace")
        if self.total > len(self.head):
            text += f"\n[truncated: {self.total - len(self.head)} more bytes]"
        return text


class WorkerSession:
    """One submission's worker process, as the grader sees it."""

    def __init__(self, zygote, *, submission, workdir, uid, hide, limits, network,
                 call_timeout, import_timeout, budget, max_restarts):
        self.zygote = zygote
        self.spawn_args = dict(submission=submission, workdir=workdir, uid=uid, hide=hide,
                               limits=limits, network=network)
        self.call_timeout = call_timeout
        self.import_timeout = import_timeout
        self.deadline = time.monotonic() + budget
        self.budget = budget
        self.restarts_left = max_restarts
        self.stdout, self.stderr = Capture(), Capture()
        self.flags = []
        self.isolation = None
        self.loaded = None
        self.incidents = []  # deaths, hangs and memory errors: [{'stage', 'reason', 'message'}]
        self.generation = 0
        self.pid = self.channel = None
        self.exhausted = None  # why no more calls are served

    # -- lifecycle -------------------------------------------------------
    def start(self):
        """Spawn a worker and import the submission; returns the worker's 'loaded' reply.

        Raises CandidateError(stage="import") when the worker dies, hangs or
        is not isolated as promised before it has loaded the submission.
        """
        self.pid, self.channel, out_fd, err_fd = self.zygote.spawn(**self.spawn_args)
        self.generation += 1
        self.stdout.attach(out_fd)
        self.stderr.attach(err_fd)
        header, _ = self._exchange(None, None, "import", min(self.import_timeout, self._left()))
        if header.get("op") != "isolation" or "error" in header:
            self.kill()
            raise CandidateError("import", "SandboxError", f"the sandbox could not be set up: {header.get('error')}",
                                 reason="crashed")
        self.isolation = {k: v for k, v in header.items() if k not in ("op", "arrays")}
        header, _ = self._exchange(None, None, "import", min(self.import_timeout, self._left()))
        self._note_flags(header)
        self.loaded = header
        return header

    def _left(self):
        return self.deadline - time.monotonic()

    def kill(self):
        if self.pid is not None:
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def close(self):
        """Kill the worker (if alive) and collect its exit status."""
        pid = self.pid
        self.kill()
        if pid is not None:
            self.zygote.wait_exit(pid, 5)
        self.pid = None

    # -- calls -------------------------------------------------------------
    def _died(self, stage, reason, message):
        pid = self.pid
        self.kill()
        self.pid = None
        if reason == "crashed" and pid is not None:
            status = self.zygote.wait_exit(pid, 3)
            if status is None:
                message = "ended the process"
            elif status["signal"] is not None:
                sig = status["signal"]
                message = f"crashed with signal {sig} ({_signal_name(sig)})"
                if sig == signal.SIGXCPU:
                    reason, message = "timeout", "ran past the CPU-time limit"
                elif sig == signal.SIGXFSZ:
                    message = "wrote past the file-size limit"
            else:
                message = f"exited with status {status['code']}"
        elif pid is not None:
            self.zygote.wait_exit(pid, 3)
        self.incidents.append({"stage": stage, "reason": reason, "message": message})
        return CandidateError(stage, "Timeout" if reason == "timeout" else "WorkerDied", message, reason=reason)

    def _exchange(self, header, arrays, stage, timeout):
        """Send (unless header is None) and wait for one reply, enforcing `timeout`."""
        try:
            if header is not None:
                protocol.send(self.channel, header, arrays)
            ready, _, _ = select.select([self.channel], [], [], max(timeout, 0))
            if not ready:
                over = self._left() <= 0
                why = f"the submission's time budget of {self.budget:g} s ran out" if over else \
                    f"did not answer within {timeout:.3g} s"
                raise self._died(stage, "timeout", why)
            return protocol.recv(self.channel)
        except protocol.Closed:
            raise self._died(stage, "crashed", "") from None
        except protocol.ProtocolError as exc:
            raise self._died(stage, "crashed", f"sent a malformed reply ({exc})") from None
        except OSError:  # broken pipe on send: the worker is gone
            raise self._died(stage, "crashed", "") from None

    def _note_flags(self, header):
        flags = header.get("flags")
        if isinstance(flags, list):
            for name in flags[:20]:
                if isinstance(name, str) and name[:100] not in self.flags:
                    self.flags.append(name[:100])

    def _ensure(self, stage):
        """A live worker, restarting a dead one while restarts and time remain."""
        if self.channel is not None:
            return
        if self.exhausted is None:
            if self._left() <= 0:
                self.exhausted = f"the submission's time budget of {self.budget:g} s ran out"
            elif self.restarts_left <= 0:
                self.exhausted = f"the worker died {len(self.incidents)} times"
        if self.exhausted is None:
            self.restarts_left -= 1
            try:
                loaded = self.start()
            except CandidateError as exc:
                self.exhausted = f"the worker could not be restarted ({exc.message})"
            else:
                if not loaded.get("ok"):
                    self.kill()
                    self.exhausted = "the submission failed to import on restart"
        if self.exhausted is not None:
            raise CandidateError(stage, "NotRun", f"was not run: {self.exhausted}", reason="not_run")

    def call(self, stage, header, arrays=None):
        self._ensure(stage)
        timeout = min(self.call_timeout, self._left())
        reply, out = self._exchange(header, arrays, stage, timeout)
        self._note_flags(reply)
        error = reply.get("error")
        if error is not None:
            if not (isinstance(error, list) and len(error) == 4 and all(isinstance(e, str) for e in error)):
                raise self._died(stage, "crashed", "sent a malformed error reply")
            st, exc_type, message, reason = (e[:2000] for e in error)
            if reason == "memory":
                self.incidents.append({"stage": st[:40], "reason": "memory", "message": "ran past the memory limit"})
            raise CandidateError(st[:40], exc_type[:100], message, reason=reason if reason in REASONS else "raised")
        return reply, out


def _float_or_none(value):
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise protocol.ProtocolError("a gradient summary is not a number")


def trusted_info(kind, name, signature):
    """The declarations properties read: the book adapter's for `kind`, never the worker's."""
    cls = FunctionAdapter if kind == "simplified_self_attention" else BookAdapter
    adapter = cls.__new__(cls)  # no class to wrap here: only its declarations are wanted
    adapter.kind, adapter.name = kind, name
    text = signature[:500] if isinstance(signature, str) else None
    adapter.signature = lambda: text
    return adapter.describe()


class RemoteCandidate(Candidate):
    """`LocalCandidate`'s interface, served by a sandboxed worker."""

    def __init__(self, session: WorkerSession, target: str, kind: str, signature=None, name=None):
        self.session = session
        self.target = target
        self.info = trusted_info(kind, name or target, signature)
        self._handles = {}  # our handle -> (worker generation, worker handle)
        self._released = []  # (worker generation, worker handle) to release with the next request
        self._next = 0

    def _call(self, stage, op, arrays=None, **fields):
        header = {"op": op, "target": self.target, **fields}
        if self._released:  # handles released since the last request go with this one: a round trip fewer each
            alive = self.session.channel is not None  # else this call starts a new worker first
            live = [h for generation, h in self._released if alive and generation == self.session.generation]
            self._released = []
            if live:  # a restarted worker numbers its modules afresh: never release those
                header["release"] = live
        return self.session.call(stage, header, arrays)

    def _remote(self, handle, stage):
        generation, remote = self._handles[handle]
        if generation == self.session.generation and self.session.channel is not None:
            return remote
        raise CandidateError(stage, "WorkerDied", "was lost: the worker running it died earlier", reason="crashed")

    @staticmethod
    def _array(out, key, stage):
        if out is None or key not in out or out[key].dtype.kind != "f":
            raise protocol.ProtocolError(f"the reply to {stage} lacks the array {key!r}")
        return out[key]

    def build(self, cfg, dtype="float32", seed=0, weights=None):
        """One request, with the weights to load when given (as `load`): a round trip fewer."""
        return self._build(cfg, dtype, seed, weights, None)[0]

    def build_and_forward(self, cfg, x, dtype="float32", seed=0, weights=None):
        """Build, load and the first forward call in one request: (handle, Forward)."""
        handle, reply, out = self._build(cfg, dtype, seed, weights, x)
        return handle, self._forward_reply(reply, out, capture_dropout=False, return_input=False)

    def _build(self, cfg, dtype, seed, weights, x):
        arrays = {} if weights is None else {f"w:{k}": np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        if x is not None:
            arrays["x"] = np.asarray(x, dtype=np.float64)
        reply, out = self._call("build", "build", arrays or None, cfg=cfg.as_dict(), dtype=dtype, seed=int(seed),
                                load=weights is not None, forward=x is not None)
        remote = reply.get("handle")
        if type(remote) is not int:
            raise self.session._died("build", "crashed", "sent a malformed reply (no handle)")
        self._next += 1
        self._handles[self._next] = (self.session.generation, remote)
        return self._next, reply, out

    def load(self, handle, weights):
        remote = self._remote(handle, "load")
        arrays = {f"w:{k}": np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self._call("load", "load", arrays, handle=remote)

    def forward(self, handle, x, *, train=False, layout="contiguous", capture_dropout=False, return_input=False):
        remote = self._remote(handle, "forward")
        reply, out = self._call("forward", "forward", {"x": np.asarray(x, dtype=np.float64)}, handle=remote,
                                train=bool(train), layout=layout, capture_dropout=bool(capture_dropout),
                                return_input=bool(return_input))
        return self._forward_reply(reply, out, capture_dropout, return_input)

    def _forward_reply(self, reply, out, capture_dropout, return_input):
        try:
            y = self._array(out, "y", "forward")
            dtype = reply.get("dtype")
            if not isinstance(dtype, str) or len(dtype) > 20:
                raise protocol.ProtocolError("no output dtype")
            masks = None
            if capture_dropout:
                count = reply.get("masks")
                if type(count) is not int or not 0 <= count <= 1000:
                    raise protocol.ProtocolError("bad dropout mask count")
                masks = [np.asarray(out.get(f"mask:{i}"), dtype=np.float64) for i in range(count)]
            x_after = self._array(out, "x_after", "forward") if return_input else None
        except protocol.ProtocolError as exc:
            raise self.session._died("forward", "crashed", f"sent a malformed reply ({exc})") from None
        return Forward(y=y, dtype=dtype, masks=masks, x_after=x_after)

    def backward(self, handle, x, grad_out, *, train=False):
        remote = self._remote(handle, "backward")
        arrays = {"x": np.asarray(x, dtype=np.float64), "grad_out": np.asarray(grad_out, dtype=np.float64)}
        reply, out = self._call("backward", "backward", arrays, handle=remote, train=bool(train))
        try:
            grads = reply.get("param_grads")
            if not isinstance(grads, dict) or len(grads) > 10000:
                raise protocol.ProtocolError("no parameter gradients")
            param_grads = {str(k)[:200]: _float_or_none(v) for k, v in grads.items()}
            y, grad_x = self._array(out, "y", "backward"), self._array(out, "grad_x", "backward")
        except protocol.ProtocolError as exc:
            raise self.session._died("backward", "crashed", f"sent a malformed reply ({exc})") from None
        return Backward(y=y, grad_x=grad_x, param_grads=param_grads)

    def _infos(self, op, handle):
        reply, _ = self._call(op, op, handle=self._remote(handle, op))
        items = reply.get("items")
        try:
            if not isinstance(items, list) or len(items) > 10000:
                raise protocol.ProtocolError("no list")
            infos = []
            for name, shape, trainable in items:
                if not (isinstance(name, str) and isinstance(shape, list) and all(type(d) is int for d in shape)):
                    raise protocol.ProtocolError("bad entry")
                infos.append(ParamInfo(name[:200], tuple(shape), bool(trainable)))
        except (protocol.ProtocolError, TypeError, ValueError):
            raise self.session._died(op, "crashed", "sent a malformed reply (parameter list)") from None
        return infos

    def parameters(self, handle):
        return self._infos("parameters", handle)

    def buffers(self, handle):
        return self._infos("buffers", handle)

    def reinit(self, handle, seed):
        self._call("reinit", "reinit", handle=self._remote(handle, "reinit"), seed=int(seed))

    def copy_parameters(self, src, dst):
        a, b = self._remote(src, "copy_parameters"), self._remote(dst, "copy_parameters")
        self._call("copy_parameters", "copy_parameters", src=a, dst=b)

    def declared_parameter_count(self, cfg):
        """None: a submission is a book class, so only the spec's formula applies (PARAM-6)."""
        return None

    def device_probe(self, cfg, input_shape, device="meta"):
        """Not offered to untrusted code: the grader judges SHAPE-6 as skipped."""
        return {"ok": False, "device": "", "error": "device probes are not run on untrusted submissions"}

    def release(self, handle):
        entry = self._handles.pop(handle, None)
        if entry and entry[0] == self.session.generation and self.session.channel is not None:
            self._released.append(entry)

    def close(self):
        self._handles.clear()
