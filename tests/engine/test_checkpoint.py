"""Checkpointer faults on real files: a save that hits a file-size limit (as a full disk), corrupt checkpoints."""

import errno
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine._checkpoint import (
    Checkpointer,
    CheckpointError,
    CheckpointFallbackWarning,
    CheckpointNotFound,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tree(step):
    """A small train-state-like pytree: float32 and int32 leaves, nested; distinct values per step."""
    rng = np.random.default_rng(step)
    return {
        "params": {"w": jnp.asarray(rng.standard_normal((64, 80), dtype=np.float32)),
                   "b": jnp.asarray(rng.standard_normal(80, dtype=np.float32))},
        "opt": {"count": jnp.asarray(step, jnp.int32), "mu": jnp.asarray(rng.integers(-9, 9, 12, dtype=np.int32))},
    }


def meta(step):
    return {"step": step, "iterator": {"seed": 3, "epoch": step // 7, "position": step % 7},
            "metrics_offset": 100 * step, "last_eval": {"loss": 0.5 / (step + 1), "acc": None}, "hist": [1, step]}


def zeros():
    return jax.tree.map(jnp.zeros_like, tree(0))


def assert_bitwise(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes()


def saved(directory, steps=(10, 20, 30), keep=3):
    ck = Checkpointer(directory, keep=keep)
    for s in steps:
        ck.save(s, tree(s), meta(s))
    ck.close()
    return str(directory)


def listing(directory):
    return sorted(os.listdir(directory))


def test_save_restore_is_bitwise_and_keeps_the_last_keep(tmp_path):
    d = saved(tmp_path / "ck", steps=(10, 20, 30), keep=2)
    ck = Checkpointer(d, keep=2)
    assert ck.all_steps() == [20, 30] and ck.latest_step() == 30
    got, m = ck.restore(zeros())
    assert_bitwise(got, tree(30))
    assert m == meta(30) and ck.restored_step == 30
    got, m = ck.restore(zeros(), step=20)
    assert_bitwise(got, tree(20))
    assert m == meta(20) and ck.restored_step == 20
    ck.close()


def test_nothing_to_restore_is_a_not_found_error(tmp_path):
    ck = Checkpointer(tmp_path / "empty")
    with pytest.raises(CheckpointNotFound, match="no finished checkpoint to resume from") as e:
        ck.restore(zeros())
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, CheckpointError)
    ck.close()
    d = saved(tmp_path / "ck", steps=(10, 20))
    ck = Checkpointer(d)
    with pytest.raises(CheckpointNotFound, match=r"no checkpoint at step 15 \(steps: 10, 20\)"):
        ck.restore(zeros(), step=15)
    ck.close()


# ----------------------------------------------------------------------------- corrupt checkpoints

def _largest_file(step_dir):
    files = [f for f in glob.glob(os.path.join(step_dir, "**"), recursive=True) if os.path.isfile(f)]
    return max(files, key=os.path.getsize)


def _truncate_largest(step_dir):
    f = _largest_file(step_dir)
    assert os.path.getsize(f) > 10000  # the array data, not a small metadata file
    os.truncate(f, os.path.getsize(f) // 2)


def _garble(path):
    def go(step_dir):
        p = os.path.join(step_dir, path)
        text = open(p).read()
        json.loads(text)  # it was JSON
        open(p, "w").write(text[: len(text) // 2])
    return go


def _delete(path):
    return lambda step_dir: shutil.rmtree(os.path.join(step_dir, path))


def _truncate(path, size):
    return lambda step_dir: os.truncate(os.path.join(step_dir, path), size)


CORRUPTIONS = {
    "truncated array file": (_truncate_largest, "Requested byte range"),
    "garbled meta JSON": (_garble("meta/metadata"), "invalid JSON"),
    "garbled tree metadata JSON": (_garble("state/_METADATA"), "invalid JSON"),
    "truncated manifest": (_truncate("state/manifest.ocdbt", 10), "Error decoding manifest"),
    "missing state directory": (_delete("state"), 'Item "state" was not found'),
    "missing meta directory": (_delete("meta"), 'Item "meta" was not found'),
    "missing array data": (_delete("state/ocdbt.process_0"), "Error reading \""),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path, kind):
    corrupt, reason = CORRUPTIONS[kind]
    d = saved(tmp_path / "ck")
    corrupt(os.path.join(d, "30"))
    ck = Checkpointer(d)
    assert ck.latest_step() == 30  # it looks finished
    with pytest.warns(CheckpointFallbackWarning) as warned:
        got, m = ck.restore(zeros())
    assert_bitwise(got, tree(20))
    assert m == meta(20) and ck.restored_step == 20
    (w,) = warned
    msg = str(w.message)
    assert msg.startswith(f"checkpoint step 30 in {d} is unreadable (") and msg.endswith("); restoring step 20 instead")
    assert reason in msg and "\n" not in msg and len(msg) < 500
    # asked for explicitly, the corrupt step is an error, not a fallback
    with pytest.raises(CheckpointError) as e:
        ck.restore(zeros(), step=30)
    assert str(e.value).startswith(f"checkpoint step 30 in {d} is unreadable: ") and reason in str(e.value)
    assert "\n" not in str(e.value) and e.value.step == 30
    ck.close()


def test_two_corrupt_checkpoints_fall_back_twice(tmp_path):
    d = saved(tmp_path / "ck")
    _delete("meta")(os.path.join(d, "30"))
    _truncate_largest(os.path.join(d, "20"))
    ck = Checkpointer(d)
    with pytest.warns(CheckpointFallbackWarning) as warned:
        got, m = ck.restore(zeros())
    assert_bitwise(got, tree(10))
    assert m == meta(10)
    assert [str(w.message).split(" is ")[0] for w in warned] == [f"checkpoint step 30 in {d}",
                                                                  f"checkpoint step 20 in {d}"]
    assert str(warned[1].message).endswith("restoring step 10 instead")
    ck.close()


def test_no_readable_checkpoint_is_one_clear_error(tmp_path):
    d = saved(tmp_path / "ck", steps=(10, 20))
    _garble("meta/metadata")(os.path.join(d, "20"))
    _delete("state")(os.path.join(d, "10"))
    ck = Checkpointer(d)
    with pytest.warns(CheckpointFallbackWarning, match="step 20 .* restoring step 10 instead"):
        with pytest.raises(CheckpointError) as e:
            ck.restore(zeros())
    msg = str(e.value)
    assert msg.startswith(f"no readable checkpoint in {d} (step 20: invalid JSON")
    assert 'step 10: Item "state" was not found' in msg and "\n" not in msg
    assert not isinstance(e.value, CheckpointNotFound)
    ck.close()


@pytest.mark.parametrize("change", ["shape", "structure"])
def test_a_checkpoint_that_does_not_fit_the_target_is_an_error_without_fallback(tmp_path, change):
    d = saved(tmp_path / "ck", steps=(10, 20))
    target = zeros()
    if change == "shape":
        target["params"]["w"] = jnp.zeros((64, 81))
    else:
        target["params"]["extra"] = jnp.zeros(3)
    ck = Checkpointer(d)
    with pytest.raises(CheckpointError) as e:  # and no CheckpointFallbackWarning (it would be an error)
        ck.restore(target)
    msg = str(e.value)
    assert msg.startswith(f"checkpoint step 20 in {d} does not fit the state to restore (another model or config?): ")
    assert ("(64, 81)" if change == "shape" else "params.extra") in msg and "\n" not in msg
    ck.close()


def test_the_next_save_sets_the_unreadable_steps_aside(tmp_path):
    d = saved(tmp_path / "ck")
    _truncate_largest(os.path.join(d, "30"))
    ck = Checkpointer(d)
    with pytest.warns(CheckpointFallbackWarning):
        ck.restore(zeros())
    assert listing(d) == ["10", "20", "30"]  # restoring changes nothing on disk
    ck.save(25, tree(25), meta(25))  # the run goes on from 20: the unreadable 30 is not its latest
    assert ck.all_steps() == [10, 20, 25] and ck.latest_step() == 25
    assert listing(d) == ["10", "20", "25", "30.unreadable"]
    ck.save(30, tree(30), meta(30))  # the same step number again, now a good one
    ck.save(40, tree(40), meta(40))
    assert ck.all_steps() == [25, 30, 40]  # keep=3 counts good checkpoints only
    assert listing(d) == ["25", "30", "30.unreadable", "40"]
    ck.close()
    ck = Checkpointer(d)
    got, m = ck.restore(zeros())  # no warning: pytest turns one into an error
    assert_bitwise(got, tree(40))
    assert m == meta(40)
    ck.close()


# ----------------------------------------------------------------------------- a save that cannot write

SAVE_UNDER_LIMIT = """
    import json, os, resource, signal, sys
    sys.path.insert(0, sys.argv[3])
    from test_checkpoint import meta, tree
    from lrjax.engine._checkpoint import CheckpointError, Checkpointer

    directory, limit = sys.argv[1], int(sys.argv[2])
    ck = Checkpointer(directory, keep=2)
    t, m = tree(30), meta(30)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        ck.save(30, t, m)
        out = {"saved": True}
    except CheckpointError as e:
        out = {"type": type(e).__name__, "message": str(e), "errno": e.errno, "step": e.step,
               "is_oserror": isinstance(e, OSError), "steps": ck.all_steps(), "listing": sorted(os.listdir(directory))}
    print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, 300, 5000], ids=["first-json-file", "small-metadata-file", "array-data"])
def test_a_save_that_cannot_write_raises_one_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, limit):
    d = saved(tmp_path / "ck", steps=(10, 20), keep=2)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SAVE_UNDER_LIMIT), d, str(limit),
                           os.path.dirname(os.path.abspath(__file__))],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)  # stdout: a pipe, no limit
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"type": "CheckpointSaveError", "errno": errno.EFBIG, "step": 30, "is_oserror": True,
                   "message": f"checkpoint step 30 not saved in {d}: File too large; step 20 is the last good checkpoint",
                   "steps": [10, 20], "listing": ["10", "20"]}  # keep=2 deleted nothing, the partial save is gone
    assert "raised an exception" not in proc.stderr  # orbax's writer-thread tracebacks are not printed
    # a fresh process without the limit: the previous checkpoint restores exactly, and step 30 can be saved
    ck = Checkpointer(d, keep=2)
    got, m = ck.restore(zeros())
    assert_bitwise(got, tree(20))
    assert m == meta(20)
    ck.save(30, tree(30), meta(30))
    assert ck.all_steps() == [20, 30]
    got, m = ck.restore(zeros())
    assert_bitwise(got, tree(30))
    assert m == meta(30)
    ck.close()


def test_an_error_that_is_not_the_storage_is_not_disguised(tmp_path):
    ck = Checkpointer(tmp_path / "ck")
    ck.save(10, tree(10), meta(10))
    with pytest.raises(TypeError):  # not JSON: orbax's own error, no CheckpointError, and nothing left behind
        ck.save(20, tree(20), {"bad": object()})
    assert listing(tmp_path / "ck") == ["10"] and ck.all_steps() == [10]
    ck.close()


def test_metadata_is_strict_json_and_non_finite_values_come_back_exactly(tmp_path):
    d = str(tmp_path / "ck")
    ck = Checkpointer(d, keep=2)
    m = {"step": 5, "evals": {"10": {"val_loss": float("nan")}}, "lineage": [{"peak": float("inf")}],
         "low": float("-inf"), "ok": 0.25}
    ck.save(5, tree(5), m)

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    on_disk = json.loads(open(os.path.join(d, "5", "meta", "metadata")).read(), parse_constant=refuse)
    assert on_disk["evals"]["10"]["val_loss"] == {"$nonfinite": "nan"} and on_disk["ok"] == 0.25
    got, meta_back = ck.restore(zeros())
    assert_bitwise(got, tree(5))
    assert np.isnan(meta_back["evals"]["10"]["val_loss"]) and meta_back["lineage"] == [{"peak": float("inf")}]
    assert meta_back["low"] == float("-inf") and ck.restore_meta()["ok"] == 0.25
    ck.close()


def test_restore_with_a_template_falls_back_when_the_newest_meta_is_garbled(tmp_path):
    d = saved(tmp_path / "ck")
    p = os.path.join(d, "30", "meta", "metadata")
    open(p, "w").write(open(p).read()[:10])
    ck = Checkpointer(d)
    seen = []

    def template(m):
        seen.append(m["step"])
        return zeros()

    with pytest.warns(CheckpointFallbackWarning, match=r"step 30 .* is unreadable \(invalid JSON.*restoring step 20"):
        got, m = ck.restore(template=template)
    assert seen == [20] and m == meta(20) and ck.restored_step == 20
    assert_bitwise(got, tree(20))
    with pytest.raises(TypeError, match="give target or template"):
        ck.restore()
    ck.close()
    ck = Checkpointer(saved(tmp_path / "ck2"))  # readable JSON, but not what the template needs
    with pytest.warns(CheckpointFallbackWarning, match=r"step 30 .* \(missing key 'chunks'\); restoring step 20"):
        _, m = ck.restore(template=lambda m: (zeros(), m["chunks"])[0] if m["step"] == 30 else zeros())
    assert m == meta(20)
    ck.close()
