"""Weight transfer between Flax model variables and their PyTorch twins (params and BN stats)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import jax.numpy as jnp
import numpy as np
import torch

# Flax leaf name -> PyTorch state_dict suffix. Kernels are transposed (see _to_torch_layout).
_LEAF_TO_TORCH = {
  ('params', 'kernel'): 'weight',
  ('params', 'bias'): 'bias',
  ('params', 'scale'): 'weight',
  ('batch_stats', 'mean'): 'running_mean',
  ('batch_stats', 'var'): 'running_var',
}


def _torch_names(variables: Mapping[str, Any]) -> dict[tuple[str, ...], str]:
  """Maps each (collection, *path, leaf) key of ``variables`` to its PyTorch state_dict key."""
  names = {}
  for collection in ('params', 'batch_stats'):
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get(collection, {})))
    for path in flat:
      suffix = _LEAF_TO_TORCH.get((collection, path[-1]))
      if suffix is None:
        raise ValueError(f'No PyTorch counterpart for {collection}/{"/".join(path)}.')
      names[(collection, *path)] = '.'.join((*path[:-1], suffix))
  return names


def _to_torch_layout(x: np.ndarray) -> np.ndarray:
  if x.ndim == 4:  # conv kernel HWIO -> OIHW
    return x.transpose(3, 2, 0, 1)
  if x.ndim == 2:  # dense kernel (in, out) -> (out, in)
    return x.T
  return x


def _from_torch_layout(x: np.ndarray) -> np.ndarray:
  if x.ndim == 4:  # OIHW -> HWIO
    return x.transpose(2, 3, 1, 0)
  if x.ndim == 2:
    return x.T
  return x


def _check_names(names: dict[tuple[str, ...], str], state: Mapping[str, torch.Tensor]) -> None:
  expected = {k for k in state if not k.endswith('num_batches_tracked')}
  given = set(names.values())
  if given != expected:
    raise ValueError(
      'Flax variables and the PyTorch module do not match: '
      f'missing in Flax {sorted(expected - given)}, '
      f'unknown to PyTorch {sorted(given - expected)}.'
    )


def flax_to_torch(variables: Mapping[str, Any], torch_module: torch.nn.Module) -> torch.nn.Module:
  """Copies Flax ``params`` and ``batch_stats`` into ``torch_module`` in place.

  Layer paths must match (``stage1_block1/conv1`` <-> ``stage1_block1.conv1``). Conv kernels go
  HWIO -> OIHW, dense kernels are transposed, BatchNorm scale/bias/mean/var go to
  weight/bias/running_mean/running_var. Values are cast to each torch tensor's dtype.

  Returns:
    ``torch_module``, for chaining.

  Raises:
    ValueError: if the two sets of variables do not correspond one to one, or shapes differ.
  """
  names = _torch_names(variables)
  state = torch_module.state_dict()
  _check_names(names, state)
  flat = {
    (c, *p): v
    for c in ('params', 'batch_stats')
    for p, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get(c, {}))).items()
  }
  with torch.no_grad():
    for key, torch_name in names.items():
      value = _to_torch_layout(np.array(flat[key], dtype=np.float64))
      target = state[torch_name]
      if tuple(target.shape) != value.shape:
        raise ValueError(
          f'Shape mismatch for {torch_name}: torch {tuple(target.shape)}, '
          f'flax (converted) {value.shape}.'
        )
      target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
  return torch_module


def torch_to_flax(
  torch_module: torch.nn.Module, variables_template: Mapping[str, Any]
) -> dict[str, Any]:
  """The inverse of ``flax_to_torch``: new Flax variables shaped like ``variables_template``.

  Each leaf takes the dtype of the corresponding template leaf. Only the ``params`` and
  ``batch_stats`` collections are produced.
  """
  names = _torch_names(variables_template)
  state = torch_module.state_dict()
  _check_names(names, state)
  out = {}
  for collection in ('params', 'batch_stats'):
    if collection not in variables_template:
      continue
    template = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables_template[collection]))
    leaves = {}
    for path, leaf in template.items():
      value = state[names[(collection, *path)]].detach().cpu().double().numpy()
      value = _from_torch_layout(value)
      if value.shape != tuple(leaf.shape):
        raise ValueError(f'Shape mismatch for {collection}/{"/".join(path)}.')
      leaves[path] = jnp.asarray(value, dtype=leaf.dtype)
    out[collection] = flax.traverse_util.unflatten_dict(leaves)
  return out
