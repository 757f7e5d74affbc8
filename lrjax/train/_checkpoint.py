"""Atomic checkpoints with orbax-checkpoint.

A checkpoint is one orbax step directory holding two items:

* ``state`` — a pytree (the :class:`~lrjax.train.TrainState`: parameters, optimizer state with its
  schedules, PRNG key, counters; and the device-side metric accumulator), saved with
  ``StandardSave`` and restored onto an abstract target of the same structure.
* ``meta`` — JSON: the data-iterator state (seed, epoch, position), the byte offset of
  ``metrics.jsonl`` at that step, the optimizer-update count and anything else small.

orbax writes each step into a temporary directory and renames it when complete, so a process killed
mid-save (SIGKILL) leaves the previous checkpoints intact; the manager keeps the last ``keep``.

>>> ck = Checkpointer("/tmp/lrjax-doc-ckpt", keep=2)          # doctest: +SKIP
>>> ck.save(10, {"w": jnp.ones(3)}, {"position": 4})           # doctest: +SKIP
>>> tree, meta = ck.restore({"w": jnp.zeros(3)})               # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import jax

__all__ = ["Checkpointer"]


class Checkpointer:
    """Save and restore ``(tree, meta)`` pairs by step in ``directory`` (orbax CheckpointManager)."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, step: int, tree: Any, meta: dict[str, Any]) -> None:
        """Write checkpoint ``step`` (blocking: it is complete and renamed into place on return)."""
        ocp = self._ocp
        self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                       meta=ocp.args.JsonSave(meta)), force=True)
        self._mngr.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore the latest (or ``step``) checkpoint onto ``target``'s structure, shardings and dtypes."""
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no finished checkpoint to resume from")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                               meta=ocp.args.JsonRestore()))
        return out["state"], dict(out["meta"])

    def close(self) -> None:
        self._mngr.close()
