"""Small runtime helpers shared by the engine and the commands: placing values on a mesh, keys, caches."""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from lrjax._rundir import safe_name

__all__ = ["put_global", "fetch", "seed_key", "unalias", "frozen_heap", "cache_dir", "enable_compilation_cache",
           "stack_trees", "default_run_dir"]


def put_global(tree: Any, sharding: NamedSharding) -> Any:
    """Put ``tree`` (the same values on every process) on ``sharding``'s mesh, on one host or several.

    On one host this is ``jax.device_put``. Across hosts ``device_put`` would first check that every host
    passed equal values (which fails on NaN), so each device's part is cut from the host copy instead;
    arrays already on ``sharding`` are kept.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x: Any) -> Any:  # pragma: no cover - multi-host (tests/train/test_multihost.py, subprocesses)
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        a = np.asarray(x)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jax.tree.map(put, tree)


def fetch(tree: Any) -> Any:
    """Device values to host numpy, gathered from every process when there are several."""
    if jax.process_count() > 1:  # pragma: no cover - multi-host
        from jax.experimental import multihost_utils  # noqa: PLC0415 - multi-host only

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def seed_key(seed: int) -> np.ndarray:
    """The raw uint32 key data of ``jax.random.key(seed)``, computed on the host (no device program)."""
    if 0 <= seed < 2**31:
        return np.array([0, seed], np.uint32)
    return np.asarray(jax.random.key_data(jax.random.key(seed)))


def unalias(tree: Any) -> Any:
    """Copy every array that appears more than once in ``tree``, so the tree can be donated.

    Eager code (``tx.init``, a restored checkpoint, ``lrjax.observe_metric`` outside jit, a schedule and
    its momentum companion sharing leaves) can put one buffer at two places; XLA refuses to donate it
    twice.
    """
    seen: set[int] = set()

    def fix(x: Any) -> Any:
        if isinstance(x, jax.Array):
            if id(x) in seen:
                return jnp.copy(x)
            seen.add(id(x))
        return x

    return jax.tree.map(fix, tree)


def stack_trees(trees: list[Any]) -> Any:
    """Host numpy stack of same-structure pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep Python's cyclic GC off the objects that exist before a run (jax, flax, orbax, the data:
    hundreds of thousands of them) until it ends. A full collection of that heap in the middle of
    compilation costs ~0.15 s on a 2-core CPU; afterwards they are collectable again. Inside a heap that
    is frozen already (a sweep calling ``train``, or the caller's own ``gc.freeze()``) it does nothing,
    so it never unfreezes objects someone else froze."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def cache_dir(*parts: str) -> str:
    """lrjax's cache folder (``$LRJAX_CACHE_DIR``, else the user cache dir, e.g. ``~/.cache/lrjax``),
    created on demand."""
    root = os.environ.get("LRJAX_CACHE_DIR")
    if not root:
        try:
            import platformdirs  # noqa: PLC0415 - optional dependency

            root = platformdirs.user_cache_dir("lrjax")
        except ImportError:  # pragma: no cover
            root = os.path.join(os.path.expanduser("~"), ".cache", "lrjax")
    path = os.path.join(root, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def enable_compilation_cache(directory: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (every program, however small) in ``directory``
    (default: ``cache_dir("jax")``). Returns the directory."""
    directory = directory or cache_dir("jax")
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def default_run_dir(name: str, root: str = "runs") -> str:
    """``runs/<timestamp>-<name>`` (with a ``-<i>`` suffix when that exists already), always inside
    ``root``: ``name`` is made one safe file name first (:func:`lrjax._rundir.safe_name`, which warns
    when it changes it), so a name like ``../../x`` cannot place the run elsewhere; ``--out`` can."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{stamp}-{safe_name(name, what='run name')}")
    path, i = base, 1
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path
