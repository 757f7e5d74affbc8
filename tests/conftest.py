"""Shared test settings (warnings are errors: pyproject; hypothesis profile for CI) and tiny data files in
every supported format, built by the tests themselves."""

import gzip
import os
import pickle
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# One CPU device unless a test's own subprocess asks for more: `lrjax sweep`'s main() would otherwise
# give a fresh worker one device per core (lrjax.sweep.use_cpu_cores), and the tests after it in that
# worker would run data-parallel.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "") and not os.environ.get(
        "JAX_NUM_CPU_DEVICES"):
    import jax

    jax.config.update("jax_num_cpu_devices", 1)


def write_idx(path, arr, *, gz):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def tiny_images(n, shape, classes, seed):
    """Separable images: class c lights up row block c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c % shape[0]] = 255
    return x, y.astype(np.uint8)


@pytest.fixture
def idx_dir(tmp_path):
    def make(gz):
        d = tmp_path / ("idx_gz" if gz else "idx_raw")
        d.mkdir()
        xtr, ytr = tiny_images(96, (10, 10), 4, 0)
        xte, yte = tiny_images(40, (10, 10), 4, 1)
        write_idx(d / "train-images-idx3-ubyte", xtr, gz=gz)
        write_idx(d / "train-labels-idx1-ubyte", ytr, gz=gz)
        write_idx(d / "t10k-images-idx3-ubyte", xte, gz=gz)
        write_idx(d / "t10k-labels-idx1-ubyte", yte, gz=gz)
        return d

    return make


@pytest.fixture
def cifar_dir(tmp_path):
    d = tmp_path / "cifar"
    d.mkdir()
    for i, name in enumerate(["data_batch_1", "data_batch_2", "test_batch"]):
        x, y = tiny_images(24, (3, 32, 32), 3, i)
        with open(d / name, "wb") as fh:
            pickle.dump({b"data": x.reshape(24, -1), b"labels": [int(v) for v in y]}, fh)
    return d


@pytest.fixture
def npz_file(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "tiny.npz"
    xtr = rng.normal(size=(80, 6)).astype(np.float32)
    ytr = (xtr[:, 0] > 0).astype(np.int64)
    xte = rng.normal(size=(30, 6)).astype(np.float32)
    yte = (xte[:, 0] > 0).astype(np.int64)
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return p


# ----------------------------------------------------------------------------- language-model data

_WORDS = ("the", "a", "model", "learns", "rate", "schedule", "warmup", "decay", "loss", "falls", "slowly", "fast",
          "byte", "token", "window", "of", "and", "to", "in", "step")


def lm_text(n_bytes: int, seed: int) -> bytes:
    """Seeded English-like text (sentences of words from a small vocabulary): a byte model learns it in a
    few dozen updates, the same on every machine."""
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n_bytes:
        words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), rng.integers(4, 10))]
        s = " ".join(words).capitalize() + (". " if rng.random() < 0.8 else ".\n")
        out.append(s)
        size += len(s)
    return "".join(out).encode()[:n_bytes]


@pytest.fixture(scope="session")
def make_lm_text():
    """:func:`lm_text` for tests that need text of another size."""
    return lm_text


@pytest.fixture(scope="session")
def lm_text_dir(tmp_path_factory):
    """A folder of six text files (60 KB), split by file; and a hidden file and a binary one, which are skipped."""
    d = tmp_path_factory.mktemp("lm") / "corpus"
    d.mkdir()
    for i in range(6):
        (d / f"part{i}.txt").write_bytes(lm_text(10_000, i))
    (d / ".hidden.txt").write_text("never read")
    (d / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return d


@pytest.fixture(scope="session")
def lm_npz(tmp_path_factory):
    """Token windows (T = 16) of the same kind of text; the last 5 targets of every other test window are
    padding (-1, its inputs 0)."""
    t = 16
    s = np.frombuffer(lm_text(40_000, 7), np.uint8)
    rng = np.random.default_rng(0)

    def windows(lo, hi, n):
        o = rng.integers(lo, hi - t - 1, n)
        w = s[o[:, None] + np.arange(t + 1)].astype(np.int64)
        return w[:, :-1].copy(), w[:, 1:].copy()

    xtr, ytr = windows(0, 32_000, 2_000)
    xte, yte = windows(32_000, 40_000, 100)
    xte[::2, -5:], yte[::2, -5:] = 0, -1
    p = tmp_path_factory.mktemp("lm") / "windows.npz"
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return p


class _SigtermOnce:
    """A training hook (every ``every`` updates) that sends SIGTERM to this process once, at its first call."""

    def __init__(self, every):
        self.every, self.done = every, False

    def __call__(self, run, state):
        if not self.done:
            self.done = True
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def sigterm_once():
    """``sigterm_once(every)``: a hook that interrupts a run as a SIGTERM would, once."""
    return _SigtermOnce
