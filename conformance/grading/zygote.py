"""A pre-loaded process that forks one sandboxed worker per submission.

Importing torch costs seconds; forking a process that already imported it
costs milliseconds.  The zygote is started once per grading process
(`python -I -m attnspec.grading.zygote FD`, a scrubbed environment), imports
torch, numpy and the worker's modules (never the reference, the properties,
hypothesis or the grader), does no torch work, and then only forks.

Control messages are JSON over a SOCK_SEQPACKET socket; each spawn reply
carries three descriptors (SCM_RIGHTS): the worker's private channel and
the read ends of its stdout and stderr.  The zygote is a child subreaper:
orphans a submission leaves behind (double forks, setsid daemons) are
re-parented to it and killed on sight, and every worker's process group is
killed when the worker ends.

`Zygote` is the grader's handle on it.
"""

import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

MAX_MESSAGE = 1 << 16


def _children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _kill_group(pid):
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Server:
    """The zygote's side: fork on request, report exits, kill orphans."""

    def __init__(self, ctrl):
        from . import sandbox

        self.ctrl = ctrl
        self.workers = set()
        self.capabilities = sandbox.probe()
        sandbox.prctl(sandbox.PR_SET_CHILD_SUBREAPER, 1)
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def send(self, message, fds=()):
        socket.send_fds(self.ctrl, [json.dumps(message).encode()], list(fds))

    def spawn(self, req):
        from . import protocol

        grader_end, worker_end = protocol.pair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self._child(req, worker_end, out_w, err_w)
        for fd in (out_w, err_w):
            os.close(fd)
        worker_end.close()
        self.workers.add(pid)
        self.send({"op": "spawned", "pid": pid, "capabilities": self.capabilities},
                  [grader_end.fileno(), out_r, err_r])
        grader_end.close()
        os.close(out_r)
        os.close(err_r)

    def _child(self, req, sock, out_w, err_w):
        """In the forked worker: isolate, then hand over to the worker loop. Never returns."""
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            from . import protocol, sandbox, worker

            try:
                isolation = sandbox.enter(
                    workdir=req["workdir"], uid=req["uid"], hide=req["hide"], limits=req["limits"],
                    network=req["network"], capabilities=self.capabilities, keep_fds={sock.fileno()},
                )
            except OSError as exc:
                protocol.send(sock, {"op": "isolation", "error": f"{exc}"})
                os._exit(71)
            import faulthandler

            faulthandler.enable()
            protocol.send(sock, {"op": "isolation", **isolation})
            worker.main(sock, req["submission"])
        except BaseException:  # noqa: BLE001 - the student's code ended the loop; the grader sees EOF
            code = 70
        finally:
            os._exit(code)

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.workers:
                self.workers.discard(pid)
                _kill_group(pid)
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
                sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
                self.send({"op": "exit", "pid": pid, "code": code, "signal": sig})

    def sweep(self):
        for pid in _children_of(os.getpid()):
            if pid not in self.workers:
                _kill_group(pid)

    def serve(self):
        while True:
            ready, _, _ = select.select([self.ctrl, self.wake_r], [], [], 0.25)
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
            self.reap()
            self.sweep()
            if self.ctrl in ready:
                data = self.ctrl.recv(MAX_MESSAGE)
                if not data:
                    break
                req = json.loads(data)
                if req["op"] == "spawn":
                    self.spawn(req)
                elif req["op"] == "close":
                    break
        for pid in list(self.workers):
            _kill_group(pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _children_of(os.getpid()):
            self.sweep()
            self.reap()
            time.sleep(0.02)


def _preload():
    """Everything a worker needs, imported before the first fork (and nothing else)."""
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import torch.utils._python_dispatch  # noqa: F401 - used to capture dropout masks

    from .. import candidate, formulas, targets  # noqa: F401
    from . import protocol, sandbox, worker  # noqa: F401

    # out of the collector's view: no full collection in a worker walks torch's million objects,
    # and none touches (and so copies) the pages every forked worker shares with the zygote
    gc.freeze()


def main():
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    socket.send_fds(ctrl, [b'{"op": "ready"}'], [])
    _Server(ctrl).serve()


ZYGOTE_ENV = {
    "PATH": "/usr/bin:/bin",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
}


class ZygoteDied(Exception):
    """The zygote is gone (a submission killed it, or it crashed)."""


class Zygote:
    """The grader's handle: start the zygote, spawn workers, receive exit events."""

    def __init__(self, start_timeout=120):
        self.ctrl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "attnspec.grading.zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=ZYGOTE_ENV, cwd="/", start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        theirs.close()
        self.exits = {}
        self.capabilities = None
        message, _ = self._receive(start_timeout)
        if message.get("op") != "ready":
            raise ZygoteDied(f"unexpected first message {message}")

    def _receive(self, timeout):
        ready, _, _ = select.select([self.ctrl], [], [], timeout)
        if not ready:
            raise ZygoteDied(f"no answer from the zygote within {timeout} s")
        data, fds, _, _ = socket.recv_fds(self.ctrl, MAX_MESSAGE, 3)
        if not data:
            err = self.proc.stderr.read(4000).decode(errors="replace") if self.proc.poll() is not None else ""
            raise ZygoteDied(f"the zygote ended (status {self.proc.poll()}) {err}".strip())
        return json.loads(data), fds

    def spawn(self, **request):
        """Fork a worker; returns (pid, channel socket, stdout fd, stderr fd)."""
        try:
            self.ctrl.send(json.dumps({"op": "spawn", **request}).encode())
        except OSError as exc:
            raise ZygoteDied(f"the zygote is gone: {exc}") from None
        while True:
            message, fds = self._receive(30)
            if message["op"] == "exit":
                self.exits[message["pid"]] = message
            elif message["op"] == "spawned":
                self.capabilities = message["capabilities"]
                channel = socket.socket(fileno=fds[0])
                return message["pid"], channel, fds[1], fds[2]

    def wait_exit(self, pid, timeout):
        """{'code', 'signal'} once the worker has ended, or None if it did not in time."""
        deadline = time.monotonic() + timeout
        while pid not in self.exits:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                message, _ = self._receive(left)
            except ZygoteDied:
                return None
            if message["op"] == "exit":
                self.exits[message["pid"]] = message
        return self.exits.pop(pid)

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        try:
            self.ctrl.send(b'{"op": "close"}')
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
        self.ctrl.close()
        if self.proc.stderr:
            self.proc.stderr.close()


if __name__ == "__main__":
    main()
