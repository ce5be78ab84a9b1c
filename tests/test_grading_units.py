"""The grading layers one at a time: protocol, sandbox, worker imports, remote = local, rubric, CLI errors."""

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from attnspec import SPEC_VERSION
from attnspec import __version__ as attnspec_version
from attnspec.grading import cli, outputs, protocol, rubric, sandbox
from attnspec.grading.grade import UID_BASE, Submission, batch_info, discover, scan_imports, shard

HOSTILE = Path(__file__).parent / "hostile"


def test_protocol_round_trips_arrays_bit_for_bit():
    a, b = protocol.pair()
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    protocol.send(a, {"op": "x", "v": [1, None]}, {"x": x, "m": x > 0})
    header, arrays = protocol.recv(b)
    assert header["op"] == "x" and header["v"] == [1, None]
    assert arrays["x"].tobytes() == x.tobytes() and arrays["m"].dtype == np.bool_


@pytest.mark.parametrize("frame, why", [
    (struct.pack("<II", 0x7FFFFFFF, 0), "cap"),
    (struct.pack("<II", 2, 0x7FFFFFFF), "more than"),
    (struct.pack("<II", 5, 0) + b"nope!", "JSON"),
    (struct.pack("<II", 2, 0) + b"[]", "object"),
])
def test_protocol_rejects_bad_frames(frame, why):
    a, b = protocol.pair()
    a.sendall(frame)
    with pytest.raises(protocol.ProtocolError, match=why):
        protocol.recv(b)


def _raw(header, payload=b""):
    body = json.dumps(header).encode()
    return struct.pack("<II", len(body), len(payload)) + body + payload


def test_protocol_rejects_oversized_and_unknown_arrays():
    a, b = protocol.pair()
    a.sendall(_raw({"arrays": [{"key": "x", "dtype": "float64", "shape": [1 << 20, 1 << 20]}]}))
    with pytest.raises(protocol.ProtocolError, match="more than"):
        protocol.recv(b)
    a.sendall(_raw({"arrays": [{"key": "x", "dtype": "object", "shape": [1]}]}))
    with pytest.raises(protocol.ProtocolError, match="bad array"):
        protocol.recv(b)


def test_protocol_rejects_arrays_that_do_not_fill_the_frame():
    a, b = protocol.pair()
    a.sendall(_raw({"arrays": [{"key": "x", "dtype": "float64", "shape": [2]}]}, b"\0" * 8))
    with pytest.raises(protocol.ProtocolError, match="take 16 bytes, the frame carries 8"):
        protocol.recv(b)


def test_protocol_reads_empty_and_many_arrays_and_they_are_writable():
    a, b = protocol.pair()
    sent = {f"w:{i}": np.full((i, 2), float(i)) for i in range(6)}  # w:0 is empty
    protocol.send(a, {"op": "build"}, sent)
    _, got = protocol.recv(b)
    assert list(got) == list(sent) and [v.shape for v in got.values()] == [v.shape for v in sent.values()]
    assert all(v.tobytes() == sent[k].tobytes() for k, v in got.items())
    got["w:3"][0, 0] = -1.0  # a received array is the receiver's to use


def test_seccomp_filter_refuses_inet_sockets_only():
    if not sandbox.probe()["seccomp"]:
        pytest.skip("libseccomp is not installed here")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sandbox.seccomp_deny_sockets()
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                unix = socket.socketpair()
                code = 0 if exc.errno == errno.EACCES and unix else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_the_worker_side_imports_no_reference_properties_or_hypothesis():
    code = ("import sys; from attnspec.grading import zygote; zygote._preload(); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('attnspec', 'hypothesis', 'pytest')))))")
    loaded = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "attnspec.grading.worker" in loaded and "attnspec.candidate" in loaded
    allowed = {"attnspec", "attnspec.adapter", "attnspec.candidate", "attnspec.config", "attnspec.targets",
               "attnspec.notebook", "attnspec.declarations", "attnspec.formulas", "attnspec.grading", "attnspec.grading.protocol", "attnspec.grading.sandbox",
               "attnspec.grading.worker", "attnspec.grading.zygote"}
    assert set(loaded) <= allowed, set(loaded) - allowed


def test_remote_candidate_answers_exactly_like_the_local_one():
    from attnspec.adapter import BookAdapter
    from attnspec.candidate import CandidateError, LocalCandidate
    from attnspec.config import Config
    from attnspec.grading.remote import RemoteCandidate, WorkerSession
    from attnspec.grading.zygote import Zygote
    from attnspec.reference import MultiHeadAttention

    scratch = Path(tempfile.mkdtemp(prefix="attnspec-test-"))  # pytest's tmp_path is closed to other uids
    os.chmod(scratch, 0o711)
    work = scratch / "w"
    work.mkdir(mode=0o700)
    shutil.copy(HOSTILE / "correct_all.py", work)
    uid = UID_BASE + 999
    if os.geteuid() == 0:
        for p in (work, work / "correct_all.py"):
            os.chown(p, uid, uid)
    zyg = Zygote()
    try:
        session = WorkerSession(zyg, submission=[str(work / "correct_all.py")], workdir=str(work), uid=uid, hide=[],
                                limits={}, network="auto", call_timeout=10, import_timeout=30, budget=60,
                                max_restarts=0)
        assert session.start()["ok"]
        remote = RemoteCandidate(session, "MultiHeadAttention", "MultiHeadAttention")
        local = LocalCandidate(BookAdapter(MultiHeadAttention))
        cfg = Config("MultiHeadAttention", 4, 6, 5, 0.0, 2, True)
        rng = np.random.default_rng(1)
        shapes = {"W_query": (6, 4), "W_key": (6, 4), "W_value": (6, 4), "b_query": (6,), "b_key": (6,),
                  "b_value": (6,), "W_out": (6, 6), "b_out": (6,)}
        weights = {k: rng.standard_normal(s) for k, s in shapes.items()}
        x, g = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 6))
        answers = []
        for cand in (remote, local):
            h = cand.build(cfg, dtype="float64", seed=3)
            cand.load(h, weights)
            fw = cand.forward(h, x, layout="strided", return_input=True)
            bw = cand.backward(h, x, g)
            answers.append((fw.y.tobytes(), fw.dtype, fw.x_after.tobytes(), bw.grad_x.tobytes(), bw.param_grads,
                            cand.parameters(h), cand.buffers(h)))
        assert answers[0] == answers[1]
        assert remote.info["adapter"] == local.info["adapter"] == "book"
        both = []  # build, load and the first call in one request answer as the three steps do
        for cand in (remote, local):
            h, fw = cand.build_and_forward(cfg, x, dtype="float64", seed=3, weights=weights)
            both.append((fw.y.tobytes(), fw.dtype, cand.forward(h, x).y.tobytes()))
        assert both[0] == both[1] and both[1][0] == both[1][2]
        for cand in (remote, local):
            with pytest.raises(CandidateError) as caught:
                cand.build_and_forward(cfg.with_(d_out=5), x)  # 5 % 2 != 0: the class's own assert
            assert (caught.value.stage, caught.value.exc_type) == ("build", "AssertionError")
            with pytest.raises(CandidateError) as caught:
                cand.build_and_forward(cfg, x[..., :3], weights=weights)  # the wrong input width fails the call
            assert caught.value.stage == "forward"
        with pytest.raises(CandidateError) as caught:
            remote.build(cfg.with_(d_out=5))  # 5 % 2 != 0: the class's own assert
        assert caught.value.exc_type == "AssertionError"
        session.close()
        with pytest.raises(CandidateError) as caught:
            remote.forward(1, x)
        assert caught.value.reason in ("crashed", "not_run")
    finally:
        zyg.close()
        shutil.rmtree(scratch, ignore_errors=True)


def test_default_rubric_and_overrides(tmp_path):
    default = rubric.load()
    assert default.points("IFACE-2") == 2 and default.points("SHAPE-4") == 1
    assert default.max_score("MultiHeadAttention") > default.max_score("SelfAttention_v1") > 0
    custom = tmp_path / "r.toml"
    custom.write_text('classes = ["CausalAttention"]\nonly = ["CAUSAL-*"]\n[points.clause]\n"CAUSAL-2" = 5\n')
    r = rubric.load(custom, seed=7)
    assert r.classes == ("CausalAttention",) and r.seed == 7
    assert all(c.startswith("CAUSAL-") for c in r.graded_clauses("CausalAttention"))
    assert r.points("CAUSAL-2") == 5 and r.fingerprint() != default.fingerprint()
    custom.write_text('classes = ["Transformer"]\n')
    with pytest.raises(rubric.RubricError, match="classes"):
        rubric.load(custom)
    custom.write_text('only = ["NOPE-1"]\n')
    with pytest.raises(rubric.RubricError, match="matches no clause"):
        rubric.load(custom)


def test_static_scan_finds_suite_and_book_imports():
    hits = scan_imports(str(HOSTILE), ["h_import_reference.py", "h_import_book.py", "correct_mha.py"])
    assert [h.split(" ")[0] for h in hits] == ["attnspec.reference", "llms_from_scratch.ch03"]


def test_discovery_ids_and_shards(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mha.py").write_text("class MultiHeadAttention: pass\n")
    (tmp_path / "a" / "util.py").write_text("X = 1\n")
    (tmp_path / "b c.py").write_text("class CausalAttention: pass\n")
    subs = discover([tmp_path / "a", tmp_path / "b c.py", tmp_path / "b c.py"])
    assert [s.id for s in subs] == ["a", "b_c", "b_c-2"] and subs[0].files == ["mha.py"]
    assert [s.id for s in shard(subs, "1/2")] == ["a", "b_c-2"] and [s.id for s in shard(subs, "2/2")] == ["b_c"]


@pytest.mark.parametrize("argv, message", [
    (["grade", "nope.py", "--out", "o"], "no such file"),
    (["grade", str(HOSTILE / "correct_mha.py"), "--out", "o", "--shard", "3/2"], "--shard"),
    (["grade", str(HOSTILE / "correct_mha.py"), "--out", "o", "--rubric", "missing.toml"], "cannot read rubric"),
    (["grade", str(HOSTILE / "correct_mha.py"), str(HOSTILE / "buggy_no_mask.py"), "--out", "o", "--gradescope"],
     "exactly one"),
    (["grade", str(HOSTILE / "correct_mha.py"), "--out", "o", "--jobs", "0"], "--jobs"),
    (["merge", "nowhere", "--out", "o"], "not an `attnspec grade` output folder"),
])
def test_usage_errors_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_csv_cells_cannot_inject_formulas():
    record = {"submission": {"id": "=cmd|'/c calc'!A1", "sha256": ""}, "score": 0.0, "max_score": 1.0,
              "status": "completed", "detail": "@SUM(1)", "flags": []}
    text = outputs.grades_csv([record])
    assert "'=cmd" in text and "'@SUM" in text


# -- attnspec merge: what it refuses (records and batch.json written here, nothing graded) ----------
RUBRIC = HOSTILE / "rubric.toml"


def _record(sid, rub, version=None):
    return {"schema": "attnspec-grade/1", "tool": {"name": "attnspec", "version": version or attnspec_version,
                                                   "spec_version": SPEC_VERSION},
            "submission": {"id": sid, "path": f"/course/{sid}", "files": ["attention.py"], "sha256": "ab" * 32},
            "rubric": {"fingerprint": rub.fingerprint(), "profile": rub.profile, "seed": rub.seed},
            "status": "completed", "detail": "", "score": 1.0, "max_score": 2.0, "flags": [], "isolation": None,
            "classes": [], "stdout": "", "stderr": ""}


def _shard(folder, sids, spec=None, *, everyone=None, rub=None, finished=True, version=None, batch=True):
    """An output folder holding `sids`, as `attnspec grade [--shard spec]` over `everyone` writes it."""
    rub = rub or rubric.load(RUBRIC)
    for sid in sids:
        outputs.write_submission(folder, _record(sid, rub, version))
    if batch:
        subs = [Submission(s, f"/course/{s}", [], "", i) for i, s in enumerate(everyone or sids)]
        info = batch_info(rub, subs, [s for s in subs if s.id in sids], spec, finished=finished)
        outputs.write_batch_file(folder, info)
    return str(folder)


def _merge(capsys, *argv):
    rc = cli.main(["merge", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if rc == 2:
        errors = [line for line in err.splitlines() if line.startswith("attnspec: error: ")]
        assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err  # one line, after any warnings
    return rc, err


ABCD = ["a", "b", "c", "d"]
FINGERPRINT = rubric.load(RUBRIC).fingerprint()

# name: (the input folders, made under tmp folder t; what the one-line refusal says)
REFUSALS = {
    "the same submission in two folders": (
        lambda t: [_shard(t / "x", ["a", "b"], batch=False), _shard(t / "y", ["b", "c"], batch=False)],
        ["submission b is in both", "/x and ", "/y: ", "count it twice"]),
    "the same submission in two folders, one of them the output": (
        lambda t: [_shard(t / "x", ["a", "b"], batch=False), _shard(t / "out", ["b"], batch=False)],
        ["submission b is in both", "/x and ", "/out: "]),
    "the same folder twice": (lambda t: [_shard(t / "x", ["a"]), str(t / "x")], ["/x is given twice"]),
    "different seeds": (
        lambda t: [_shard(t / "x", ["a", "c"], "1/2", everyone=ABCD),
                   _shard(t / "y", ["b", "d"], "2/2", everyone=ABCD, rub=rubric.load(RUBRIC, seed=7))],
        ["runs graded differently", "/x (batch.json) has seed 0", "/y (batch.json) has seed 7"]),
    "different rubrics, same profile and seed": (
        lambda t: [_shard(t / "x", ["a"], batch=False),
                   _shard(t / "y", ["b"], batch=False, rub=rubric.load(RUBRIC, only=["IFACE-*"]))],
        ["runs graded differently", f"/x (submission a) has rubric fingerprint {FINGERPRINT}",
         "/y (submission b) has rubric fingerprint "]),
    "different attnspec versions": (
        lambda t: [_shard(t / "x", ["a"], batch=False), _shard(t / "y", ["b"], batch=False, version="0.9")],
        ["runs graded differently", f"/x (submission a) has attnspec version {attnspec_version}",
         "/y (submission b) has attnspec version 0.9"]),
    "different shard counts": (
        lambda t: [_shard(t / "x", ["a", "e"], "1/4", everyone=ABCD + ["e"]),
                   _shard(t / "y", ["b", "e"], "2/3", everyone=ABCD + ["e"])],
        ["shards of different counts", "/x is shard 1/4", "/y is shard 2/3"]),
    "shards of different lists": (
        lambda t: [_shard(t / "x", ["a", "c"], "1/2", everyone=ABCD), _shard(t / "y", ["b"], "2/2", everyone=ABCD[:3])],
        ["different submission lists", "/x split 4 submissions", "/y split 3"]),
    "a shard twice": (
        lambda t: [_shard(t / "x", ["a", "c"], "1/2", everyone=ABCD),
                   _shard(t / "y", ["a", "c"], "1/2", everyone=ABCD)],
        ["shard 1/2 is given twice", "/x and in ", "/y"]),
    "an unfinished shard": (
        lambda t: [_shard(t / "x", ["a", "c"], "1/2", everyone=ABCD),
                   _shard(t / "y", ["b"], "2/2", everyone=ABCD, finished=False)],
        ["/y is from an `attnspec grade` run that did not finish", "--resume"]),
    "a missing shard": (
        lambda t: [_shard(t / "x", ["a", "d"], "1/3", everyone=ABCD), _shard(t / "z", ["c"], "3/3", everyone=ABCD)],
        ["shard 2 of 3 is missing (got 1, 3)", "--allow-missing"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_merge_refuses_with_one_line(case, tmp_path, capsys):
    make, needles = REFUSALS[case]
    dirs = make(tmp_path)
    out = tmp_path / "out"
    before = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    rc, err = _merge(capsys, *dirs, "--out", out)
    assert rc == 2
    for needle in needles:
        assert needle in err, (needle, err)
    assert (sorted(p.name for p in out.rglob("*")) if out.exists() else []) == before  # nothing written


def test_merge_with_allow_missing_keeps_the_gap_visible_and_completes_later(tmp_path, capsys):
    x = _shard(tmp_path / "x", ["a", "d"], "1/3", everyone=ABCD)
    z = _shard(tmp_path / "z", ["c"], "3/3", everyone=ABCD)
    rc, err = _merge(capsys, x, z, "--out", tmp_path / "all", "--allow-missing")
    assert rc == 0 and "warning: shard 2 of 3 is missing" in err
    merged = outputs.read_batch(tmp_path / "all")
    assert merged["shard"]["index"] == [1, 3] and merged["shard"]["of"] == 3 and merged["finished"]
    assert "Shard 1,3/3 only: 4 submissions in all" in (tmp_path / "all" / "summary.md").read_text()
    y = _shard(tmp_path / "y", ["b"], "2/3", everyone=ABCD)
    rc, err = _merge(capsys, tmp_path / "all", y, "--out", tmp_path / "all")  # the output is an input
    assert rc == 0, err
    merged = outputs.read_batch(tmp_path / "all")
    assert merged["shard"] is None and merged["submissions"] == ABCD
    assert merged["rubric"] == {"fingerprint": FINGERPRINT, "profile": "quick", "seed": 0}
    rows = (tmp_path / "all" / "grades.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ABCD
    assert "only:" not in (tmp_path / "all" / "summary.md").read_text()


def test_merge_takes_an_empty_shard_and_folders_without_batch_json(tmp_path, capsys):
    # five shards of four submissions: shard 5 grades nothing, and is still an output folder
    dirs = [_shard(tmp_path / f"s{i}", [ABCD[i - 1]] if i <= 4 else [], f"{i}/5", everyone=ABCD) for i in range(1, 6)]
    assert (tmp_path / "s5" / "submissions").is_dir() and not list((tmp_path / "s5" / "submissions").iterdir())
    rc, err = _merge(capsys, *dirs, "--out", tmp_path / "all")
    assert rc == 0, err
    assert outputs.read_batch(tmp_path / "all")["submissions"] == ABCD
    # folders without batch.json (an older attnspec) merge without the shard checks
    old = [_shard(tmp_path / "o1", ["a"], batch=False), _shard(tmp_path / "o2", ["b"], batch=False)]
    rc, err = _merge(capsys, *old, "--out", tmp_path / "old")
    assert rc == 0, err


def test_merge_refuses_an_unreadable_batch_file(tmp_path, capsys):
    x = _shard(tmp_path / "x", ["a"])
    (tmp_path / "x" / "batch.json").write_text('{"finished": true, "shard": {"index": [5], "of": 2}}')
    rc, err = _merge(capsys, x, "--out", tmp_path / "all")
    assert rc == 2 and "is not an attnspec batch file" in err


def test_merge_takes_only_the_last_run_of_a_reused_folder(tmp_path, capsys):
    x = _shard(tmp_path / "x", ["a", "c"], "1/2", everyone=ABCD)
    outputs.write_submission(tmp_path / "x", _record("old", rubric.load(RUBRIC)))  # from last week's run
    y = _shard(tmp_path / "y", ["b", "d"], "2/2", everyone=ABCD)
    rc, err = _merge(capsys, x, y, "--out", tmp_path / "all")
    assert rc == 0 and "leaving out 1 record of an earlier run (old)" in err
    assert outputs.read_batch(tmp_path / "all")["submissions"] == ABCD
    (tmp_path / "y" / "submissions" / "d.json").unlink()
    rc, err = _merge(capsys, x, y, "--out", tmp_path / "all2")
    assert rc == 2 and "has no record of d, which its batch.json lists" in err
