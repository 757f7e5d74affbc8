"""Run-directory lock, atomic writes, writable checks: real processes, real files, real OS errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types

import pytest

from lrjax import _rundir
from lrjax._rundir import (
    LOCK_NAME,
    RunDirError,
    RunDirLocked,
    RunDirUnwritable,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    lock_run_dir,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, *args):
    """A real second process running ``code`` with lrjax importable."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = """
    import sys, time
    from lrjax._rundir import lock_run_dir
    with lock_run_dir(sys.argv[1], what="lrjax train"):
        print("LOCKED", flush=True)
        time.sleep(120)
"""

TRY = """
    import sys
    from lrjax._rundir import RunDirLocked, lock_run_dir
    try:
        with lock_run_dir(sys.argv[1], what="lrjax train"):
            print("GOT IT", flush=True)
    except RunDirLocked as e:
        print(e, flush=True)
        sys.exit(2)
"""


@pytest.mark.slow
def test_a_second_process_is_refused_while_the_first_holds_the_lock_and_admitted_after_it_is_killed(tmp_path):
    run = tmp_path / "run"
    holder = _python(HOLD, run)
    try:
        assert holder.stdout.readline().strip() == "LOCKED", holder.stderr.read()
        recorded = json.loads((run / LOCK_NAME).read_text())
        assert recorded["pid"] == holder.pid and recorded["host"] == socket.gethostname()

        second = _python(TRY, run)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        lines = out.strip().splitlines()
        assert len(lines) == 1  # one line for the user
        msg = lines[0]
        assert msg.startswith(f"lrjax train: {run} is in use by another process (pid {holder.pid} on ")
        assert socket.gethostname() in msg and "-c" in msg and "since " in msg
        # this process too (another open file description of the same lock file) is refused
        with pytest.raises(RunDirLocked, match=f"pid {holder.pid}") as info, lock_run_dir(run):
            pass
        assert info.value.holder["pid"] == holder.pid and isinstance(info.value, RunDirError)
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the OS drops the flock
        holder.wait(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    assert (run / LOCK_NAME).exists()  # the dead holder's file (and description) is still there ...
    third = _python(TRY, run)  # ... and does not block
    out, err = third.communicate(timeout=120)
    assert (third.returncode, out.strip()) == (0, "GOT IT"), err
    with lock_run_dir(run):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()  # released: the lock file is removed


def test_the_lock_records_its_holder_and_leaves_nothing_on_release(tmp_path):
    run = tmp_path / "deep" / "run"  # created when missing
    with lock_run_dir(run, what="lrjax sweep") as lock_path:
        assert lock_path == os.path.join(str(run), LOCK_NAME)
        rec = json.loads(open(lock_path).read())
        assert rec["pid"] == os.getpid() and rec["what"] == "lrjax sweep" and rec["host"] == socket.gethostname()
        assert set(rec) == {"pid", "host", "command", "what", "since"}
    assert os.listdir(run) == []  # a finished run's directory holds only its results
    with lock_run_dir(run):  # free again
        pass


def test_a_lock_on_a_file_its_holder_removed_meanwhile_is_taken_again_on_the_new_file(tmp_path, monkeypatch):
    """The race the removal on release opens: B opens .lock, A removes it and releases, B locks the
    removed file while C creates and locks a new one. B must notice and lock the path's current file."""
    lock_path = str(tmp_path / LOCK_NAME)
    real_flock = _rundir.fcntl.flock
    calls = []

    def flock(fd, op):
        if not calls:  # B's first flock: meanwhile the holder removed the file it opened
            os.unlink(lock_path)
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(_rundir.fcntl, "flock", flock)
    open(lock_path, "w").close()
    with lock_run_dir(tmp_path):
        assert len(calls) == 2  # the first lock was on the removed file: taken again on a new one
        assert os.path.samestat(os.fstat(calls[1]), os.stat(lock_path))
        p = _python(TRY, tmp_path)  # and it is the file another process sees and is refused on
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, err


def test_the_holding_thread_may_nest_other_threads_are_refused(tmp_path):
    errors = []

    def other():
        try:
            with lock_run_dir(tmp_path):
                errors.append(None)
        except RunDirLocked as e:
            errors.append(e)

    with lock_run_dir(tmp_path):
        with lock_run_dir(tmp_path):  # the CLI locks, then train() locks again
            pass
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], RunDirLocked)
        assert f"pid {os.getpid()}" in str(errors[0])
        # the nested exit did not release the outer lock: another process is still refused
        p = _python(TRY, tmp_path)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, err
    with lock_run_dir(tmp_path):  # released once the outer block exits
        pass


def test_a_locked_error_names_the_directory_even_without_a_recorded_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(_rundir, "_read_holder", lambda path: {})
    with lock_run_dir(tmp_path):
        t_err = []
        t = threading.Thread(target=lambda: t_err.append(pytest.raises(RunDirLocked, _enter, tmp_path)))
        t.start()
        t.join()
    assert str(t_err[0].value) == (f"lrjax train: {tmp_path} is in use by another process; "
                                   "wait for it to finish or write somewhere else")


def _enter(path):
    with lock_run_dir(path):
        pass


def test_without_fcntl_the_filelock_package_is_used_and_without_it_there_is_no_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(_rundir, "fcntl", None)
    monkeypatch.setitem(sys.modules, "filelock", None)  # not installed
    with lock_run_dir(tmp_path), lock_run_dir(tmp_path / "x"):
        pass

    class Timeout(Exception):
        pass

    taken = set()

    class FileLock:
        def __init__(self, path, timeout):
            self.path, self.timeout = path, timeout

        def acquire(self):
            assert self.timeout == 0  # never wait
            if self.path in taken:
                raise Timeout(self.path)
            taken.add(self.path)

        def release(self):
            taken.discard(self.path)

    monkeypatch.setitem(sys.modules, "filelock", types.SimpleNamespace(FileLock=FileLock, Timeout=Timeout))
    with lock_run_dir(tmp_path):
        assert taken == {os.path.join(str(tmp_path), LOCK_NAME)}
        taken.add(os.path.join(str(tmp_path / "b"), LOCK_NAME))  # as if another process held b
        with pytest.raises(RunDirLocked, match="is in use by another process; wait"):
            with lock_run_dir(tmp_path / "b"):
                pass
    assert taken == {os.path.join(str(tmp_path / "b"), LOCK_NAME)}


# ----------------------------------------------------------------------------- atomic writes

def _leftovers(d):
    return sorted(p for p in os.listdir(d) if p.endswith(".tmp"))


def test_atomic_write_replaces_the_file_and_keeps_its_permissions(tmp_path):
    p = tmp_path / "summary.json"
    atomic_write_json(p, {"status": "running", "steps": 3})
    assert json.loads(p.read_text()) == {"status": "running", "steps": 3}
    assert p.stat().st_mode & 0o777 == 0o666 & ~_rundir._umask()
    os.chmod(p, 0o640)
    atomic_write_text(p, "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"
    assert p.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("broken", ["replace", "fsync", "write"])
def test_a_failure_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch, broken):
    p = tmp_path / "config.yaml"
    p.write_text("old: 1\n")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    if broken == "write":
        real_fdopen = os.fdopen

        class Half:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, text):
                self.fh.write(text[:3])  # a prefix reaches the disk, then the disk is full
                boom()

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Half(real_fdopen(fd, *a, **k)))
    else:
        monkeypatch.setattr(os, broken, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(p, "new: 2\n" * 1000)
    assert p.read_text() == "old: 1\n"
    assert _leftovers(tmp_path) == []


def test_an_unserialisable_object_leaves_the_old_json_intact(tmp_path):
    p = tmp_path / "summary.json"
    atomic_write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": 1} and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_process_killed_just_before_the_rename_leaves_the_old_file(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text('{"status": "running"}')
    code = """
        import os, signal, sys
        from lrjax._rundir import atomic_write_json
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # die with the new text on disk
        atomic_write_json(sys.argv[1], {"status": "completed", "pad": "x" * 100000})
    """
    proc = _python(code, p)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(p.read_text()) == {"status": "running"}
    (tmp,) = _leftovers(tmp_path)  # the finished temporary file, never seen under the real name
    assert tmp.startswith(".summary.json.") and json.loads((tmp_path / tmp).read_text())["status"] == "completed"


# ----------------------------------------------------------------------------- writable?

def _one_line(e):
    s = str(e.value)
    assert "\n" not in s and "Traceback" not in s
    return s


def test_a_writable_path_passes_and_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "a" / "b" / "run")
    assert os.listdir(tmp_path) == []
    check_writable(tmp_path)
    assert os.listdir(tmp_path) == []
    check_writable(tmp_path / "a" / "run", create=True)
    assert os.listdir(tmp_path / "a" / "run") == []


def test_a_path_under_a_regular_file_is_refused_naming_it(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(RunDirUnwritable) as e:
        check_writable(f / "runs" / "a", what="lrjax train")
    assert _one_line(e) == f"lrjax train: cannot write to {f}/runs/a: Not a directory ({f})"
    assert e.value.reason == "Not a directory" and isinstance(e.value, OSError)
    with pytest.raises(RunDirUnwritable) as e:
        check_writable(f)
    assert _one_line(e) == f"lrjax: cannot write to {f}: it is a file, not a directory"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_a_name_too_long_is_refused_with_the_os_reason(tmp_path):
    long = tmp_path / ("r" * 300)
    with pytest.raises(RunDirUnwritable) as e:
        check_writable(long / "x")
    assert _one_line(e) == f"lrjax: cannot write to {long}/x: File name too long ({long})"
    assert e.value.errno == 36 or "too long" in e.value.reason
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        with pytest.raises(RunDirUnwritable) as e:
            check_writable(ro / "run")
        assert _one_line(e) == f"lrjax: cannot write to {ro}/run: Permission denied"
        with pytest.raises(RunDirUnwritable) as e:
            check_writable(ro)
        assert _one_line(e) == f"lrjax: cannot write to {ro}: Permission denied"
    finally:
        os.chmod(ro, 0o755)


def test_the_lock_on_an_impossible_path_is_the_same_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(RunDirUnwritable) as e, lock_run_dir(f / "run"):
        pass
    assert _one_line(e).startswith(f"lrjax train: cannot write to {f}/run: ")


def test_an_empty_path_is_refused():
    with pytest.raises(RunDirUnwritable, match="empty path"):
        check_writable("")


# ----------------------------------------------------------------------------- strict JSON, safe names

def _strict_loads(text):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_and_says_which_values_were_not_finite(tmp_path):
    import numpy as np

    p = tmp_path / "summary.json"
    atomic_write_json(p, {"status": "completed", "final_eval": {"test_loss": float("nan"), "acc": 0.5},
                          "lineage": [{"peak": float("inf")}, {"peak": np.float32(-np.inf)}], "n": 3})
    data = _strict_loads(p.read_text())  # a strict reader: NaN / Infinity would raise
    assert data["final_eval"] == {"test_loss": None, "acc": 0.5} and data["lineage"] == [{"peak": None}] * 2
    assert data["non_finite"] == ["final_eval.test_loss", "lineage[0].peak", "lineage[1].peak"]
    atomic_write_json(p, {"a": [1.0, 2.5]})
    assert _strict_loads(p.read_text()) == {"a": [1.0, 2.5]}  # nothing to say: no non_finite key
    atomic_write_json(p, [float("nan")])  # not a mapping: the null alone
    assert _strict_loads(p.read_text()) == [None]


@pytest.mark.parametrize("name, safe", [
    ("../../../escaped", "escaped"),
    ("/etc/cron.d/x", "etc_cron.d_x"),
    ("a\\b", "a_b"),
    ("..", "run"), (".", "run"), ("", "run"), ("...hidden", "hidden"),
    ("tab\there\nnewline\x00nul\x1b[31m", "tab_here_newline_nul_31m"),
    ("peak=0.001 seed=0", "peak=0.001_seed=0"),
    ("my..run", "my.run"),
    ("ünïcode-name", "ünïcode-name"), ("bad\u202eevil", "bad_evil"), ("a／b", "a_b"),
    ("digits-mlp-adamw-warmup-cosine_decay", "digits-mlp-adamw-warmup-cosine_decay"),
])
def test_safe_name_is_one_file_name_and_says_what_changed(name, safe):
    if name == safe:
        assert _rundir.safe_name(name) == safe  # no warning (warnings are errors here)
        return
    with pytest.warns(_rundir.UnsafeNameWarning, match=r"run name .* is not a safe file name .*; using "):
        assert _rundir.safe_name(name) == safe
    assert os.sep not in safe and ".." not in safe and safe.isprintable() and not safe.startswith(".")


def test_a_long_name_is_cut_to_fit_a_file_name():
    assert _rundir.safe_name("x" * 1000, what=None) == "x" * 200
    assert _rundir.safe_name("é" * 1000, what=None) == "é" * 100  # 200 bytes: a file name holds 255


def test_default_run_dirs_stay_inside_runs(tmp_path, monkeypatch):
    from lrjax.engine._util import default_run_dir

    monkeypatch.chdir(tmp_path)
    with pytest.warns(_rundir.UnsafeNameWarning, match=r"'\.\./\.\./x' .*using 'x'"):
        d = default_run_dir("../../x")
    assert os.path.dirname(d) == "runs" and d.endswith("-x")


def test_a_message_that_names_the_command_is_not_prefixed_twice(capsys):
    from lrjax.cli._common import fail

    err = RunDirLocked("lrjax sweep: S is in use by another process (pid 1); wait for it", "S")
    assert fail("lrjax sweep", err) == 2
    assert capsys.readouterr().err == "lrjax sweep: S is in use by another process (pid 1); wait for it\n"
