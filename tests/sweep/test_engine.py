"""The engine: each configuration of a vmapped sweep equals training it alone with ``lrjax train``."""

import json
import os
import re

import jax
import numpy as np
import pytest

import lrjax
from lrjax.engine import load_config
from lrjax.sweep import eval_points, log_points, train_many
from lrjax.sweep._layout import chunk_layout as _chunks
from lrjax.train import train

BASE = ["train.steps=24", "train.log_every=4", "train.eval_every=8", "train.checkpoint_every=1000",
        "model.hidden=[16]", "data.batch_size=32", "train.progress=false"]


def cfg(*extra):
    return load_config(None, BASE + list(extra))


CONFIGS = {
    "a": cfg("schedule.schedule.peak=0.003"),
    "b": cfg("schedule.schedule.peak=0.02", "schedule.warmup_steps=4"),
    "b_seed1": cfg("schedule.schedule.peak=0.02", "schedule.warmup_steps=4", "train.seed=1"),
    "const": cfg("schedule={name: constant, value: 0.01}", "optimizer.args.weight_decay=0.001"),
}


@pytest.fixture(scope="module")
def swept():
    labels = list(CONFIGS)
    results, groups = train_many([CONFIGS[k] for k in labels], labels=labels, keep_states=True)
    return dict(zip(labels, results)), groups


def alone(tmp_path_factory, key):
    out = tmp_path_factory.mktemp(key)
    train(CONFIGS[key], out_dir=str(out / "run"), progress=False, plot=False, verbose=False)
    with open(out / "run" / "metrics.jsonl") as fh:
        return [json.loads(line) for line in fh]


def assert_records_close(got, want):
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for g, w in zip(got, want):
        assert g["step"] == w["step"]
        for k in g:
            np.testing.assert_allclose(g[k], w[k], rtol=2e-5, atol=2e-6, err_msg=f"{k} at step {g['step']}")


def test_groups_follow_structure(swept):
    results, groups = swept
    # warmup-cosine and constant differ only in the schedule's family: one program, a Switch each
    assert [sorted(g["members"]) for g in groups] == [["a", "b", "b_seed1", "const"]]
    assert groups[0]["data_shared"] is False  # digits: the split depends on the seed
    assert {r.group for r in results.values()} == {0}
    sched = results["const"].state.opt_state.hyperparams["learning_rate"]
    assert isinstance(sched, lrjax.Switch) and float(sched.index) == 1
    assert [type(b).__name__ for b in sched.branches] == ["Warmup", "Constant"]


def test_families_apart_when_asked():
    labels = ["a", "const"]
    results, groups = train_many([CONFIGS[k] for k in labels], labels=labels, switch_families=False)
    assert [g["members"] for g in groups] == [["a"], ["const"]]
    assert groups[1]["batches_shared"] is True
    assert results[0].group == 0 and results[1].group == 1


@pytest.mark.parametrize("key", ["b_seed1", "const"])
def test_each_config_equals_lrjax_train_alone(swept, tmp_path_factory, key):
    results, _ = swept
    assert_records_close(results[key].records, alone(tmp_path_factory, key))


def test_rates_are_the_schedule(swept):
    results, _ = swept
    r = results["b"]
    sched = __import__("lrjax.engine", fromlist=["make_schedule"]).make_schedule(CONFIGS["b"])
    np.testing.assert_allclose(r.rates, np.asarray(sched(np.arange(24))), rtol=1e-6)
    assert r.rates[0] == 0.0 and r.rates.argmax() == 4  # 4 warmup steps, then the peak
    np.testing.assert_allclose(results["const"].rates, 0.01)


def test_seeds_differ_and_configs_learn(swept):
    results, _ = swept
    a, b, b1 = results["a"], results["b"], results["b_seed1"]
    assert b.final_eval["test_accuracy"] > 0.7 and b.final_eval["test_accuracy"] > a.final_eval["test_accuracy"]
    assert b.final_train["train_loss"] != b1.final_train["train_loss"]
    assert [r["step"] for r in b.records if "test_loss" in r] == eval_points(CONFIGS["b"]) == [8, 16, 24]
    assert [r["step"] for r in b.records if "train_loss" in r] == log_points(CONFIGS["b"])


def test_max_parallel_chunks_give_the_same_results(swept):
    results, _ = swept
    keys = ["a", "b", "b_seed1"]
    chunked, groups = train_many([CONFIGS[k] for k in keys], labels=keys, max_parallel=2, keep_states=True)
    assert groups[0]["chunks"] == 2 and groups[0]["chunk_size"] == 2
    for k, r in zip(keys, chunked):
        assert r.label == k and r.chunk_size == 2
        assert_records_close(r.records, results[k].records)
        for x, y in zip(jax.tree.leaves(r.state.params), jax.tree.leaves(results[k].state.params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_chunk_sizes():
    # (chunks, chunk size, devices)
    assert _chunks(16, None, 1) == (1, 16, 1)
    assert _chunks(16, 5, 1) == (4, 4, 1)      # equal chunks, not 5+5+5+1
    assert _chunks(10, 4, 1) == (3, 4, 1)
    assert _chunks(3, None, 2) == (1, 4, 2)    # padded to a multiple of the devices
    assert _chunks(5, 1, 1) == (5, 1, 1)
    # max_parallel below the device count: fewer devices, never more configs per call than asked
    assert _chunks(16, 1, 2) == (16, 1, 1)
    assert _chunks(16, 3, 2) == (8, 2, 2)
    assert _chunks(5, 4, 4) == (2, 4, 4)
    for n in range(1, 20):
        for mp in (None, 1, 2, 3, 5, 8):
            for nd in (1, 2, 4):
                count, size, used = _chunks(n, mp, nd)
                assert count * size >= n and (count - 1) * size < n, (n, mp, nd)
                assert size % used == 0 and used <= nd
                assert mp is None or size <= mp


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_parallel must be a positive integer"):
        train_many([CONFIGS["a"]], max_parallel=0)
    with pytest.raises(ValueError, match="got 2 labels for 1 configs"):
        train_many([CONFIGS["a"]], labels=["x", "y"])
    assert train_many([]) == ([], [])


def test_use_cpu_cores_rejects_bad_counts_and_leaves_a_chosen_count():
    from lrjax.sweep import use_cpu_cores

    for bad in (0, -2, True, 2.0, "4"):
        with pytest.raises((TypeError, ValueError), match=rf"use_cpu_cores: count must be an integer >= 1, got "
                                                          rf"count={re.escape(repr(bad))}"):
            use_cpu_cores(bad)
    assert use_cpu_cores() == 0 and use_cpu_cores(4) == 0  # the suite fixed the count (conftest)
    assert jax.device_count() == 1


def _fresh_python(code: str, **env) -> str:
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, "JAX_PLATFORMS": "cpu", **env},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


@pytest.mark.slow
def test_use_cpu_cores_in_a_fresh_process():
    cores = len(os.sched_getaffinity(0))
    got = _fresh_python("import jax, lrjax.sweep as s; n = s.use_cpu_cores(); "
                        "print(n, jax.device_count(), s.use_cpu_cores(3), jax.device_count())")
    assert got == (f"{cores} {cores} 0 {cores}" if cores > 1 else "0 1 0 1")
    assert _fresh_python("import jax, lrjax.sweep as s; print(s.use_cpu_cores(3), jax.device_count())") == "3 3"
    # too late once JAX computed something; a count chosen in the environment is kept
    assert _fresh_python("import jax, lrjax.sweep as s; jax.numpy.zeros(1); print(s.use_cpu_cores(3), "
                         "jax.device_count())") == "0 1"
    assert _fresh_python("import jax, lrjax.sweep as s; print(s.use_cpu_cores(), jax.device_count())",
                         XLA_FLAGS="--xla_force_host_platform_device_count=5") == "0 5"
    assert _fresh_python("import jax, lrjax.sweep as s; print(s.use_cpu_cores(), jax.device_count())",
                         JAX_NUM_CPU_DEVICES="1") == "0 1"


def test_cpu_chunks_keep_states_within_half_the_cache(monkeypatch):
    import lrjax.sweep._layout as engine
    from lrjax.train import build_experiment

    exp = build_experiment(CONFIGS["a"])
    shapes = jax.eval_shape(exp.init_state, jax.ShapeDtypeStruct((2,), np.uint32))
    nbytes = lambda t: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(t))  # noqa: E731
    per = nbytes(shapes) + nbytes(shapes.params)   # the state and one gradient
    cpu = jax.devices()
    monkeypatch.setattr(engine, "last_level_cache", lambda: 2 * 5 * per + 7)
    assert engine.cache_bound(exp, cpu, 16) == 5          # 5 states fit half the cache
    assert engine.cache_bound(exp, cpu, 5) is None        # all fit: the whole group at once
    assert engine.cache_bound(exp, cpu * 8, 16) == 8      # never fewer than one per device
    monkeypatch.setattr(engine, "last_level_cache", lambda: None)
    assert engine.cache_bound(exp, cpu, 16) is None       # unknown cache: no bound

    class Accelerator:
        platform = "gpu"

    monkeypatch.setattr(engine, "last_level_cache", lambda: 1 << 20)
    assert engine.cache_bound(exp, [Accelerator()], 16) is None

    # and train_many follows it: 4 configs in chunks of 2, numbers unchanged
    monkeypatch.setattr(engine, "last_level_cache", lambda: 2 * 2 * per + 7)
    res, groups = train_many([CONFIGS[k] for k in ("a", "b", "a", "b")])
    assert [(g["chunks"], g["chunk_size"]) for g in groups] == [(2, 2)]
    np.testing.assert_allclose(res[0].final_eval["test_loss"], res[2].final_eval["test_loss"], rtol=1e-6)


def test_last_level_cache_reads_sysfs(tmp_path):
    from lrjax.sweep._layout import last_level_cache

    for i, text in enumerate(["32K\n", "1024K\n", "32768K\n", "garbage\n"]):  # L1d, L1i... as sysfs writes them
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "size").write_text(text)
    pattern = str(tmp_path / "index*" / "size")
    assert last_level_cache(pattern) == 32768 * 1024          # the largest, in bytes
    (tmp_path / "index2" / "size").write_text("2M")
    assert last_level_cache(pattern) == 2 << 20
    assert last_level_cache(str(tmp_path / "nothing" / "size")) is None   # unreadable: no bound
    real = last_level_cache()
    assert real is None or (isinstance(real, int) and real >= 1 << 16)


def test_a_switch_keeps_each_configs_rates_and_numbers():
    """Families trained through one Switch program give what each family's own program gives."""
    labels = ["a", "const"]
    together, g1 = train_many([CONFIGS[k] for k in labels], labels=labels)
    apart, g2 = train_many([CONFIGS[k] for k in labels], labels=labels, switch_families=False)
    assert (len(g1), len(g2)) == (1, 2)
    for t, a in zip(together, apart):
        np.testing.assert_array_equal(t.rates, a.rates)
        assert_records_close(t.records, a.records)
