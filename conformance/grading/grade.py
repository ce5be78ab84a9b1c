"""Grade a batch of untrusted submissions: one sandboxed worker each, checks here.

For every submission: scan its source for imports of the suite or the book's
package (static, never executed here), copy it into a fresh folder owned by
its own uid, fork a worker from the zygote, run the engine against one
`RemoteCandidate` per graded class, score the clauses with the rubric, and
write the record (`outputs.write_submission`) atomically before moving on.
A worker that dies, hangs or lies costs that submission its clauses, never
the batch.  `--jobs N` runs N grading processes, each with its own zygote.

Statuses: completed, flagged, import error, exited during import, crashed
during import: signal N, timeout during import, no book classes, memory
limit, timeout, crashed: signal N, exited: status N, grader error.
Flagged submissions (imports of attnspec or llms_from_scratch, seen by the
static scan or by the worker's audit hook) score 0.
"""

import ast
import concurrent.futures
import gc
import hashlib
import importlib.util
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

from .. import SPEC_VERSION, __version__, notebook
from ..candidate import CandidateError
from ..config import KINDS
from . import outputs
from .remote import RemoteCandidate, WorkerSession
from .zygote import Zygote, ZygoteDied

SCHEMA = "attnspec-grade/1"
BATCH_SCHEMA = "attnspec-batch/1"
FORBIDDEN = ("attnspec", "llms_from_scratch")
UID_BASE = 1_900_000
MAX_SUBMISSION_BYTES = 50 << 20


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


@dataclass
class Submission:
    id: str
    path: str  # as given (absolute)
    files: list  # graded .py and .ipynb files, relative to the submission's root
    sha256: str
    index: int


# -- finding submissions ---------------------------------------------------
SOURCES = (".py", ".ipynb")  # a notebook is read as the module its code cells make (attnspec.notebook)


def _trees(path, rel):
    """([(ast, line -> 'where')], complete) for one file: the file, or each code cell of a notebook.

    `complete` is False when some of the code cannot be parsed (the worker
    reports why); a notebook cell that does not parse is left out, the other
    cells are still there.  Static: nothing runs.
    """
    if path.endswith(".ipynb"):
        try:
            nb = notebook.convert(path)
        except notebook.NotebookError:
            return [], False
        trees = []
        for cell in nb.cells:
            try:
                trees.append((ast.parse(cell.text), lambda line, n=cell.number: f"{rel} cell {n}, line {line}"))
            except (SyntaxError, ValueError):
                continue
        return trees, len(trees) == len(nb.cells)
    try:
        return [(ast.parse(open(path, "rb").read()), lambda line: f"{rel}:{line}")], True
    except (OSError, SyntaxError, ValueError):
        return [], False


def _defines_book_names(path):
    trees, complete = _trees(path, "")
    if not complete:
        return True  # let the worker report the error
    return any(
        isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.Assign)) and (
            getattr(node, "name", None) in KINDS
            or any(isinstance(t, ast.Name) and t.id in KINDS for t in getattr(node, "targets", []))
        )
        for tree, _ in trees for node in tree.body
    )


def _hash(root, files):
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        with open(os.path.join(root, rel), "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()


def discover(entries):
    """One Submission per entry (a .py or .ipynb file, or a folder whose such files define the book's names)."""
    subs, seen = [], set()
    for entry in entries:
        path = os.path.abspath(entry)
        if os.path.isfile(path):
            if not path.endswith(SOURCES):
                raise UsageError(f"{entry}: a submission is a .py file, a .ipynb notebook or a folder")
            root, files = os.path.dirname(path), [os.path.basename(path)]
            base = os.path.splitext(os.path.basename(path))[0]
        elif os.path.isdir(path):
            root, base = path, os.path.basename(path.rstrip("/"))
            found = sorted(
                os.path.relpath(os.path.join(d, f), path)
                for d, dirs, names in os.walk(path)
                if not any(part.startswith(".") for part in os.path.relpath(d, path).split(os.sep) if part != ".")
                for f in names if f.endswith(SOURCES)
            )
            files = [f for f in found if _defines_book_names(os.path.join(path, f))]
        else:
            raise UsageError(f"{entry}: no such file or folder")
        sid = re.sub(r"[^A-Za-z0-9._-]", "_", base) or "submission"
        unique, n = sid, 2
        while unique in seen:
            unique, n = f"{sid}-{n}", n + 1
        seen.add(unique)
        subs.append(Submission(unique, path, files, _hash(root, files) if files else "", len(subs)))
    return subs


def parse_shard(spec):
    """(I, N) from 'I/N' with 1 <= I <= N; UsageError otherwise."""
    m = re.fullmatch(r"(\d+)/(\d+)", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard wants I/N with 1 <= I <= N, got {spec!r}")
    return int(m.group(1)), int(m.group(2))


def shard(subs, spec):
    """The submissions of shard I/N (1-based), by position: deterministic across machines."""
    i, n = parse_shard(spec)
    return [s for s in subs if s.index % n == i - 1]


def batch_info(rubric, subs, graded, spec=None, *, finished=False):
    """What batch.json says about one `attnspec grade` run (outputs.write_batch writes it).

    `subs`: every submission discovered, `graded`: those of this shard.  The
    shard records which part of which list it is: its index, the count, and
    the discovered list's length and hash (ids in order), so `attnspec merge`
    can refuse shards cut from different lists, repeated or missing shards.
    """
    part = None
    if spec:
        i, n = parse_shard(spec)
        ids = "\n".join(s.id for s in subs).encode()
        part = {"index": [i], "of": n, "submissions": len(subs), "list": hashlib.sha256(ids).hexdigest()[:16]}
    return {
        "schema": BATCH_SCHEMA, "finished": finished,
        "tool": {"name": "attnspec", "version": __version__, "spec_version": SPEC_VERSION},
        "rubric": {"fingerprint": rubric.fingerprint(), "profile": rubric.profile, "seed": rubric.seed},
        "shard": part, "submissions": [s.id for s in graded],
    }


# -- static tripwire ----------------------------------------------------------
def scan_imports(root, files):
    """'module (file:line)' for every import of the suite or the book's package in the source.

    In a notebook the place reads 'module (file.ipynb cell N, line L)'.
    """
    hits = []
    for rel in files:
        for tree, where in _trees(os.path.join(root, rel), rel)[0]:
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    func = node.func
                    called = getattr(func, "id", None) or getattr(func, "attr", None)
                    if called in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                        names = [node.args[0].value]
                for name in names:
                    if name.split(".")[0] in FORBIDDEN:
                        hits.append(f"{name} ({where(node.lineno)})")
    return hits


# -- one submission -----------------------------------------------------------
def _protected(path):
    """True when hiding `path` would hide the Python runtime the worker still uses."""
    keep = [sys.prefix, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    torch_spec = importlib.util.find_spec("torch")
    if torch_spec and torch_spec.origin:
        keep.append(os.path.dirname(torch_spec.origin))
    path = path.rstrip("/") + "/"
    return any((k.rstrip("/") + "/").startswith(path) for k in keep)


def hidden_paths(subs, out_dir):
    """What a worker must not see: every submission, the output folder, the reference."""
    paths = set()
    for s in subs:
        root = s.path if os.path.isdir(s.path) else os.path.dirname(s.path)
        if _protected(root):
            paths.update(os.path.join(root, f) for f in s.files)
        else:
            paths.add(root)
    if not _protected(out_dir):
        paths.add(out_dir)
    ref = importlib.util.find_spec("attnspec.reference")
    if ref and ref.submodule_search_locations:
        paths.update(ref.submodule_search_locations)
    return sorted(paths)


def _prepare(sub, scratch):
    work = os.path.join(scratch, f"{sub.index:05d}")
    os.mkdir(work, 0o700)
    src_root = sub.path if os.path.isdir(sub.path) else os.path.dirname(sub.path)
    dest = os.path.join(work, "submission")
    if os.path.isdir(sub.path):
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(sub.path) for f in fs
                   if not os.path.islink(os.path.join(d, f)))
        if size > MAX_SUBMISSION_BYTES:
            raise UsageError(f"{sub.id} is {size >> 20} MiB, over the {MAX_SUBMISSION_BYTES >> 20} MiB cap")
        shutil.copytree(sub.path, dest, symlinks=True)
    else:
        os.mkdir(dest)
        shutil.copy(sub.path, dest)
    uid = UID_BASE + sub.index
    if os.geteuid() == 0:
        for d, dirs, files in os.walk(work):
            for name in [d] + [os.path.join(d, f) for f in dirs + files]:
                os.lchown(name, uid, uid)
    return work, dest, src_root, uid


def _class_status(incidents):
    for reason, status in (("memory", "memory limit"), ("timeout", "timeout"), ("crashed", None)):
        for inc in incidents:
            if inc["reason"] == reason:
                if status:
                    return status, inc
                m = re.search(r"signal (\d+)", inc["message"])
                return (f"crashed: signal {m.group(1)}" if m else
                        f"exited: status {inc['message'].rpartition(' ')[2]}"), inc
    return "completed", None


def _score(result, rubric, kind):
    """Rubric points for each graded clause (the engine marks unrun clauses not_checked)."""
    graded = rubric.graded_clauses(kind)
    points, earned = {}, 0.0
    for c in result.clauses:
        if c.id in graded:
            got = rubric.points(c.id) if c.status == "passed" else 0.0
            points[c.id] = [got, rubric.points(c.id)]
            earned += got
    return earned, points


def _missing(kind, rubric, why):
    points = {c: [0.0, rubric.points(c)] for c in rubric.graded_clauses(kind)}
    return {"kind": kind, "status": "missing", "detail": why, "score": 0.0,
            "max_score": rubric.max_score(kind), "points": points, "result": None}


def grade_one(sub, rubric, zygote, scratch, hide, network="auto"):
    """The record of one submission (see outputs.write_submission); never raises for the student's faults."""
    from .. import influence
    from ..engine import check_candidate

    started = time.monotonic()
    limits = rubric.limits
    record = {
        "schema": SCHEMA,
        "tool": {"name": "attnspec", "version": __version__, "spec_version": SPEC_VERSION},
        "submission": {"id": sub.id, "path": sub.path, "files": sub.files, "sha256": sub.sha256},
        "rubric": {"fingerprint": rubric.fingerprint(), "profile": rubric.profile, "seed": rubric.seed},
        "status": "completed", "detail": "", "score": 0.0, "max_score": rubric.total(),
        "flags": [], "isolation": None, "classes": [], "stdout": "", "stderr": "",
    }
    src_root = sub.path if os.path.isdir(sub.path) else os.path.dirname(sub.path)
    record["flags"] = [f"{hit} [source]" for hit in scan_imports(src_root, sub.files)]
    if not sub.files:
        record.update(status="no book classes", detail=f"no .py or .ipynb file defines any of {', '.join(KINDS)}")
        record["classes"] = [_missing(k, rubric, "not found") for k in rubric.classes]
        return _finish(record, started)
    work, dest, _, uid = _prepare(sub, scratch)
    session = WorkerSession(
        zygote, submission=[os.path.join(dest, f) for f in sub.files], workdir=work, uid=uid, hide=hide,
        limits={k: limits[k] for k in ("memory_mb", "cpu_s", "file_mb", "nproc")}, network=network,
        call_timeout=limits["call_timeout_s"], import_timeout=limits["import_timeout_s"],
        budget=limits["submission_timeout_s"], max_restarts=int(limits["max_restarts"]),
    )
    try:
        try:
            loaded = session.start()
        except CandidateError as exc:
            inc = session.incidents[-1] if session.incidents else {"reason": "crashed", "message": exc.message}
            status, _ = _class_status([inc])
            status = {"timeout": "timeout during import", "memory limit": "memory limit"}.get(
                status, "exited during import" if status.startswith("exited") else f"{status} during import")
            record.update(status=status, detail=f"the submission {exc.message} while being imported")
            record["classes"] = [_missing(k, rubric, "not checked: the import did not finish") for k in rubric.classes]
            return _finish(record, started, session)
        if not loaded.get("ok"):
            status = "exited during import" if loaded.get("exited") else "import error"
            record.update(status=status, detail=str(loaded.get("error", ""))[:2000])
            record["classes"] = [_missing(k, rubric, "not checked: the import failed") for k in rubric.classes]
            return _finish(record, started, session)
        found = {t["name"]: t for t in loaded.get("targets", []) if isinstance(t, dict) and t.get("name") in KINDS}
        if not found:
            record.update(status="no book classes", detail=f"the submission defines none of {', '.join(KINDS)}")
        for kind in rubric.classes:
            if kind not in found:
                record["classes"].append(_missing(kind, rubric, f"{kind} is not defined"))
                continue
            seen = len(session.incidents)
            target = f"{sub.id}:{kind}"
            candidate = RemoteCandidate(session, kind, kind, signature=found[kind].get("signature"), name=target)
            try:
                result = check_candidate(candidate, target=target, kind=kind, profile=rubric.profile,
                                         seed=rubric.seed, only=rubric.engine_only(kind), influence=False)
            except Exception:  # a bug in the suite: say so, never blame the student
                record["classes"].append({**_missing(kind, rubric, "grader error"), "status": "grader error",
                                          "detail": traceback.format_exc(limit=5)[-2000:]})
                continue
            status, inc = _class_status(session.incidents[seen:])
            influence.attach(result.clauses, candidate, candidate.info)  # after the status: the map is no evidence
            result.isolation = session.isolation
            result.status = {"completed": "completed", "timeout": "timeout"}.get(status, "crashed")
            earned, points = _score(result, rubric, kind)
            record["classes"].append({
                "kind": kind, "status": status, "detail": f"{inc['message']} during {inc['stage']}()" if inc else "",
                "score": earned, "max_score": rubric.max_score(kind), "points": points, "result": result.to_dict(),
            })
        return _finish(record, started, session)
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)


def _finish(record, started, session=None):
    if session is not None:
        session.close()  # end the worker first, so its output pipes reach EOF
        record["isolation"] = session.isolation
        record["stdout"], record["stderr"] = session.stdout.text(), session.stderr.text()
        record["flags"] += [f"{name} [run time]" for name in session.flags]
        record["incidents"] = session.incidents
    record["score"] = round(sum(c["score"] for c in record["classes"]), 4)
    if record["status"] == "completed":
        for c in record["classes"]:
            if c["status"] not in ("completed", "missing"):
                record.update(status=c["status"], detail=f"{c['kind']}: {c['detail']}")
                break
    if record["flags"]:
        modules = sorted({f.split(" ")[0] for f in record["flags"]})
        record.update(score=0.0, status="flagged",
                      detail=f"imports {', '.join(modules)}: no credit for delegating to the suite or the book's code")
    record["duration_s"] = round(time.monotonic() - started, 3)
    return record


# -- batches ----------------------------------------------------------------
def _preload_engine():
    """Import the engine and every property: once here, before grading processes are forked."""
    from .. import engine  # noqa: F401
    from ..properties import _load

    _load()


class Grader:
    """A zygote and a scratch folder: what one grading process needs."""

    def __init__(self, rubric, hide, out_dir, network="auto"):
        self.rubric, self.hide, self.out_dir, self.network = rubric, hide, out_dir, network
        self.scratch = tempfile.mkdtemp(prefix="attnspec-grade-")
        os.chmod(self.scratch, 0o711)
        self.zygote = Zygote()
        _preload_engine()
        gc.freeze()  # see attnspec.cli: full collections then skip torch's and hypothesis's objects

    def grade(self, sub):
        try:
            if not self.zygote.alive():  # a submission may have killed it (same-uid mode)
                self.zygote.close()
                self.zygote = Zygote()
            record = grade_one(sub, self.rubric, self.zygote, self.scratch, self.hide, self.network)
        except (ZygoteDied, UsageError, OSError) as exc:
            record = {"schema": SCHEMA, "submission": {"id": sub.id, "path": sub.path, "files": sub.files,
                                                      "sha256": sub.sha256},
                      "tool": {"name": "attnspec", "version": __version__, "spec_version": SPEC_VERSION},
                      "rubric": {"fingerprint": self.rubric.fingerprint()},
                      "status": "grader error", "detail": f"{type(exc).__name__}: {exc}"[:2000], "score": 0.0,
                      "max_score": self.rubric.total(), "flags": [], "isolation": None, "classes": [],
                      "stdout": "", "stderr": ""}
        outputs.write_submission(self.out_dir, record)
        return record

    def close(self):
        self.zygote.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


_grader = None


def _pool_init(rubric, hide, out_dir, network):
    global _grader
    import atexit

    _grader = Grader(rubric, hide, out_dir, network)
    atexit.register(_grader.close)


def _pool_grade(sub):
    return _grader.grade(sub)


def finished(out_dir, sub, rubric):
    """The stored record when `sub` was already graded with this tool version and rubric, else None."""
    record = outputs.read_submission(out_dir, sub.id)
    if (record and record.get("submission", {}).get("sha256") == sub.sha256
            and record.get("tool", {}).get("version") == __version__
            and record.get("rubric", {}).get("fingerprint") == rubric.fingerprint()
            and record.get("status") != "grader error"):
        return record
    return None


def grade_batch(subs, rubric, out_dir, *, jobs=1, resume=False, hide=None, network="auto", progress=None):
    """Grade `subs` into `out_dir`; returns their records in submission order."""
    os.makedirs(out_dir, exist_ok=True)
    hide = hidden_paths(subs, out_dir) if hide is None else hide
    records, todo = {}, []
    for sub in subs:
        done = finished(out_dir, sub, rubric) if resume else None
        if done:
            records[sub.id] = done
            progress and progress(done, resumed=True)
        else:
            todo.append(sub)
    if jobs <= 1 or len(todo) <= 1:
        grader = Grader(rubric, hide, out_dir, network) if todo else None
        try:
            for sub in todo:
                records[sub.id] = grader.grade(sub)
                progress and progress(records[sub.id])
        finally:
            grader and grader.close()
    else:
        # forked grading processes start with torch, the engine and the properties loaded (an import
        # of each saved per process); fork only from a single-threaded process (attnspec.pool), else
        # start them fresh
        from ..pool import usable_jobs

        forking = usable_jobs(jobs) > 1
        if forking:
            _preload_engine()
        ctx = multiprocessing.get_context("fork" if forking else "spawn")
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(todo)), mp_context=ctx, initializer=_pool_init,
                                                    initargs=(rubric, hide, out_dir, network)) as pool:
            for future in concurrent.futures.as_completed([pool.submit(_pool_grade, s) for s in todo]):
                record = future.result()
                records[record["submission"]["id"]] = record
                progress and progress(record)
    return [records[s.id] for s in subs]
