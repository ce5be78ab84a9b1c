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

from attnspec.grading import cli, outputs, protocol, rubric, sandbox
from attnspec.grading.grade import UID_BASE, discover, scan_imports, shard

HOSTILE = Path(__file__).parent / "hostile"


def test_protocol_round_trips_arrays_bit_for_bit():
    a, b = protocol.pair()
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    protocol.send(a, {"op": "x", "v": [1, None]}, {"x": x, "m": x > 0})
    header, arrays = protocol.recv(b)
    assert header["op"] == "x" and header["v"] == [1, None]
    assert arrays["x"].tobytes() == x.tobytes() and arrays["m"].dtype == np.bool_


@pytest.mark.parametrize("frame, why", [
    (b"\xff\xff\xff\x7f", "cap"),
    (b"\x05\x00\x00\x00nope!", "JSON"),
    (b'\x02\x00\x00\x00[]', "object"),
])
def test_protocol_rejects_bad_frames(frame, why):
    a, b = protocol.pair()
    a.sendall(frame)
    with pytest.raises(protocol.ProtocolError, match=why):
        protocol.recv(b)


def _raw(header):
    body = json.dumps(header).encode()
    return struct.pack("<I", len(body)) + body


def test_protocol_rejects_oversized_and_unknown_arrays():
    a, b = protocol.pair()
    a.sendall(_raw({"arrays": [{"key": "x", "dtype": "float64", "shape": [1 << 20, 1 << 20]}]}))
    with pytest.raises(protocol.ProtocolError, match="more than"):
        protocol.recv(b)
    a.sendall(_raw({"arrays": [{"key": "x", "dtype": "object", "shape": [1]}]}))
    with pytest.raises(protocol.ProtocolError, match="bad array"):
        protocol.recv(b)


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
               "attnspec.notebook", "attnspec.formulas", "attnspec.grading", "attnspec.grading.protocol", "attnspec.grading.sandbox",
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
