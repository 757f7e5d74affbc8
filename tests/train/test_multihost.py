"""Multi-host: two processes (jax.distributed over localhost, gloo CPU collectives), one device each, run the
same `lrjax.train` (and `lrjax.sweep.train_many`) code as one process with two devices and get the same
numbers; only process 0 writes the run's files."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from lrjax.train import read_metrics

ARGS = ["train.steps=30", "train.log_every=10", "train.eval_every=15", "train.checkpoint_every=15",
        "model.hidden=[32]", "data.batch_size=32"]

SCRIPT = """
import sys, jax
port, pid, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if n > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=n, process_id=pid)
from lrjax.train import load_config, train
s = train(load_config(None, sys.argv[5:]), out_dir=out, progress=False, verbose=False, plot=False)
print("RESULT", jax.process_index(), jax.device_count(), s["final_eval"]["test_loss"])
"""


SWEEP_SCRIPT = SCRIPT.split("from lrjax.train")[0] + """
from lrjax.train import load_config
from lrjax.sweep import train_many
cfgs = [load_config(None, [f"schedule.schedule.peak={p}", *sys.argv[5:]]) for p in (1e-3, 3e-3, 1e-2, 3e-2)]
res, groups = train_many(cfgs)
print("RESULT", jax.process_index(), jax.device_count(), *[r.final_eval["test_loss"] for r in res])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(n: int, out: str, env: dict, script: str = SCRIPT) -> list[subprocess.Popen]:
    port = _free_port()
    return [subprocess.Popen([sys.executable, "-c", script, str(port), str(i), str(n), out, *ARGS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, JAX_PLATFORMS="cpu", **env)) for i in range(n)]


def _wait(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(next(line for line in stdout.splitlines() if line.startswith("RESULT")))
    return outs


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tmp_path):
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    procs = _launch(2, multi, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
    one = _launch(1, single, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    res_multi, res_single = _wait(procs), _wait(one)
    assert [r.split()[1:3] for r in res_multi] == [["0", "2"], ["1", "2"]]  # two hosts, two devices in all
    assert res_single[0].split()[1:3] == ["0", "2"]
    m, s = read_metrics(multi), read_metrics(single)
    assert m["train"]["step"] == s["train"]["step"] == [10, 20, 30]  # written once, by process 0
    np.testing.assert_allclose(m["train"]["train_loss"], s["train"]["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(m["eval"]["test_loss"], s["eval"]["test_loss"], rtol=1e-5)
    assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["15", "30"]
    summary = json.loads(open(os.path.join(multi, "summary.json")).read())
    assert summary["devices"] == 2 and summary["status"] == "completed"


@pytest.mark.slow
def test_sweep_over_two_processes_matches_one_process(tmp_path):
    one_dev, two_devs = ({"XLA_FLAGS": f"--xla_force_host_platform_device_count={k}"} for k in (1, 2))
    multi = _wait(_launch(2, str(tmp_path), one_dev, SWEEP_SCRIPT))
    single = _wait(_launch(1, str(tmp_path), two_devs, SWEEP_SCRIPT))
    losses = [np.array(r.split()[3:], float) for r in multi + single]
    assert len(losses[0]) == 4
    for other in losses[1:]:  # both hosts hold every configuration's result, equal to the 2-device run
        np.testing.assert_allclose(other, losses[0], rtol=1e-5)
