"""Per-epoch checkpoints of the train state with Orbax (synchronous, atomic)."""

from __future__ import annotations

import os
from typing import Any, Optional

import jax


class Checkpointer:
  """Saves and restores ``{'epoch': int, 'state': pytree}`` under ``workdir/checkpoints``.

  Keeps the newest ``max_to_keep`` epochs; Orbax writes each into a temporary
  directory and renames it when complete, so a kill never leaves a torn one.
  """

  def __init__(self, workdir: str, max_to_keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    self._ocp = ocp
    self._manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, 'checkpoints')),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest_epoch(self) -> Optional[int]:
    """The last saved epoch (1-based), or None."""
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any) -> None:
    self._manager.save(epoch, args=self._ocp.args.StandardSave(state))
    self._manager.wait_until_finished()

  def restore(self, epoch: int, like: Any) -> Any:
    """The state saved at ``epoch``, with the shapes, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
    return self._manager.restore(epoch, args=self._ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()
