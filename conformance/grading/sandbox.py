"""Isolation layers a worker enters right after the fork, before any student code.

Each layer is applied only where the platform allows it, and `enter` returns
what was really applied (the `isolation` dict every report carries):

  process     own session and process group (the grader kills the group),
              death signal when the zygote dies, no new privileges
  network     a new network namespace when root (no interfaces but a down
              loopback), else a seccomp filter refusing AF_INET/AF_INET6/
              AF_PACKET sockets (libseccomp through ctypes), else absent
  filesystem  when root: a private mount namespace in which the other
              submissions, the output folder, the suite's reference and the
              grader's scratch space are covered by empty read-only mounts;
              always: a fresh working directory holding a copy of the submission
  uid         when root: an unprivileged uid/gid of its own per submission,
              so it cannot write the grader's files or signal other workers
  limits      RLIMIT_AS (address space), CPU, FSIZE, NPROC, NOFILE, CORE=0
  environment scrubbed to an allow-list

Python 3.11 has no os.unshare, so namespaces go through libc with ctypes.
Imports only the standard library.
"""

import ctypes
import ctypes.util
import errno
import os
import resource
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
BLOCKED_FAMILIES = (2, 10, 17)  # AF_INET, AF_INET6, AF_PACKET

DEFAULT_LIMITS = {
    "memory_mb": 1536,  # address space the worker may add to the zygote's
    "cpu_s": 300,
    "file_mb": 16,
    "nproc": 64,
    "nofile": 256,
}
ENV_ALLOW = ("LANG", "LC_ALL", "TZ")

_libc = ctypes.CDLL(None, use_errno=True)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option, value):
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _unshare(flags):
    _check(_libc.unshare(flags), "unshare")


def _mount(source, target, fstype, flags, data=None):
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _libseccomp():
    name = ctypes.util.find_library("seccomp")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def seccomp_deny_sockets():
    """Install a filter making socket(AF_INET/AF_INET6/AF_PACKET, ...) fail with EACCES."""
    lib = _libseccomp()
    if lib is None:
        raise OSError(errno.ENOSYS, "libseccomp is not installed")
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init failed")
    try:
        nr = lib.seccomp_syscall_resolve_name(b"socket")
        deny = 0x00050000 | errno.EACCES  # SCMP_ACT_ERRNO(EACCES)
        for family in BLOCKED_FAMILIES:
            cmp = _ArgCmp(0, SCMP_CMP_EQ, family, 0)
            rc = lib.seccomp_rule_add_array(ctx, deny, nr, 1, ctypes.byref(cmp))
            if rc < 0:
                raise OSError(-rc, "seccomp_rule_add failed")
        rc = lib.seccomp_load(ctx)  # libseccomp sets no_new_privs itself
        if rc < 0:
            raise OSError(-rc, "seccomp_load failed")
    finally:
        lib.seccomp_release(ctx)


def _can_unshare(flags):
    """Whether unshare(flags) works here (containers often refuse it even to root), tried in a child."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _libc.unshare(flags) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def probe():
    """What this machine offers, decided once in the zygote: root, namespaces, seccomp."""
    root = os.geteuid() == 0
    return {
        "root": root,
        "netns": root and _can_unshare(CLONE_NEWNET),
        "mountns": root and _can_unshare(CLONE_NEWNS),
        "seccomp": _libseccomp() is not None,
    }


def _closed_ancestor(path):
    """The highest folder above `path` that other users cannot enter (e.g. /root), or None."""
    parts = os.path.abspath(path).split("/")[1:]
    for i in range(1, len(parts)):
        folder = "/" + "/".join(parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _expose(runtime):
    """Make the Python runtime reachable for an unprivileged uid when it lives in, say, /root.

    The closed folder is covered by an empty root-owned tmpfs (hiding the rest
    of it) into which the runtime folders are bind-mounted at their own paths.
    """
    exposed = []
    by_ancestor = {}
    for path in runtime:
        top = _closed_ancestor(path)
        if top:
            by_ancestor.setdefault(top, []).append(path)
    for top, paths in by_ancestor.items():
        fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in paths]
        _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0711")
        for path, fd in zip(paths, fds):
            os.makedirs(path, mode=0o711, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)
            exposed.append(path)
    return exposed


def _hide(paths, own, runtime):
    """Cover each path with an empty read-only mount; `own` (the worker's folder) stays."""
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _expose(runtime)
    hidden = []
    for path in paths:
        if not os.path.exists(path) or own == path or own.startswith(path.rstrip("/") + "/"):
            continue
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
        else:
            _mount("/dev/null", path, None, MS_BIND)
        hidden.append(path)
    return hidden


def runtime_paths():
    """Folders the worker must keep reading: the interpreter, its packages, attnspec."""
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, here)}
    paths.update(os.path.realpath(p) for p in sys.path if p and os.path.isdir(p))
    # keep only the outermost of nested folders
    return sorted(p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths))


def _limits(limits):
    vm_kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                vm_kb = int(line.split()[1])
    address = vm_kb * 1024 + limits["memory_mb"] * 2**20
    table = {
        resource.RLIMIT_AS: address,
        resource.RLIMIT_CPU: limits["cpu_s"],
        resource.RLIMIT_FSIZE: limits["file_mb"] * 2**20,
        resource.RLIMIT_NOFILE: limits["nofile"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: limits["nproc"],
    }
    for which, value in table.items():
        resource.setrlimit(which, (value, value))
    return {
        "address_space_mb": address // 2**20,
        "cpu_s": limits["cpu_s"],
        "file_mb": limits["file_mb"],
        "nproc": limits["nproc"],
        "nofile": limits["nofile"],
        "core": 0,
    }


def enter(*, workdir, uid, hide, limits, network, capabilities, keep_fds):
    """Apply every layer to this (freshly forked) process; return the isolation dict.

    `network` is "auto" (namespace when root, else seccomp), "seccomp" or "off";
    `uid` is the unprivileged uid to become when root.  Raises OSError when a
    layer the capabilities promised cannot be applied: a half-isolated worker
    must not run student code.
    """
    report = {"process": "own process group, killed as a group", "warnings": []}
    os.setsid()
    root = capabilities["root"]

    _close_except(keep_fds)

    if network == "auto" and capabilities["netns"]:
        _unshare(CLONE_NEWNET)
        report["network"] = "network namespace (no interfaces)"
    elif network in ("auto", "seccomp") and capabilities["seccomp"]:
        report["network"] = "seccomp filter (inet sockets refused)"
    else:
        report["network"] = "absent"
        report["warnings"].append(
            "no network isolation: run as root (sudo) for a network namespace, or install libseccomp2"
        )
    pending_seccomp = report["network"].startswith("seccomp")

    if capabilities["mountns"]:
        report["hidden"] = _hide(hide, workdir, runtime_paths())
        report["filesystem"] = "private mount namespace; other submissions, output and reference hidden"
    else:
        report["filesystem"] = "fresh working directory only"
        report["warnings"].append("no mount namespace: other submissions and the output folder stay readable")
    if root:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        report["uid"] = uid
    else:
        report["uid"] = f"same as grader ({os.getuid()})"
        report["warnings"].append(
            "the worker runs as your user: it could read or write your files and signal your processes; "
            "grade as root (sudo, a container) for an unprivileged uid and hidden paths"
        )
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
    if pending_seccomp:
        seccomp_deny_sockets()

    os.chdir(workdir)
    lang = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    os.environ.clear()
    os.environ.update(lang)
    os.environ.update({
        "PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    })
    report["environment"] = "scrubbed (PATH, HOME, TMPDIR, thread counts)"
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    if not root:  # the user's other processes count against NPROC too
        limits["nproc"] += _processes_of(os.getuid())
    report["limits"] = _limits(limits)
    return report


def _processes_of(uid):
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def _close_except(keep):
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)
