"""Model registry: the CIFAR models by name, ``get_model`` and ``count_params``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from padam_jax.models.layers import BatchNorm, channels
from padam_jax.models.resnet import BasicBlock, ResNet, ResNet18
from padam_jax.models.vgg import VGG16
from padam_jax.models.wide_resnet import WideResNet16_4

MODELS: dict[str, Callable[..., nn.Module]] = {
  'vgg16': VGG16,
  'resnet18': ResNet18,
  'wrn16_4': WideResNet16_4,
}


def get_model(
  name: str, *, num_classes: int = 10, width: float = 1.0, dtype: Any = jnp.float32
) -> nn.Module:
  """Builds a registered model.

  Args:
    name: one of ``MODELS`` ('vgg16', 'resnet18', 'wrn16_4').
    num_classes: number of logits, at least 1.
    width: positive multiplier of every channel count; each count becomes
      ``max(1, round_half_up(count * width))``; 1.0 gives the exact architecture.
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.

  Returns:
    An unbound Linen module called as ``model.apply(variables, x, train=...)`` on NHWC input.

  Example:
    >>> model = get_model('resnet18', num_classes=100, width=0.5)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  """
  if name not in MODELS:
    raise ValueError(f'Unknown model {name!r}; valid names: {sorted(MODELS)}.')
  if not width > 0:
    raise ValueError(f'width must be > 0, got {width}.')
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1, got {num_classes}.')
  return MODELS[name](num_classes=num_classes, width=width, dtype=dtype)


def count_params(variables_or_params: Mapping[str, Any]) -> int:
  """Number of scalars in the 'params' collection (running statistics are not counted).

  Accepts a full variables dict (with a 'params' key) or the params tree itself, holding
  arrays or ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape(model.init, ...)``).
  """
  params = variables_or_params.get('params', variables_or_params)
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


__all__ = [
  'MODELS',
  'get_model',
  'count_params',
  'VGG16',
  'ResNet',
  'ResNet18',
  'WideResNet16_4',
  'BasicBlock',
  'BatchNorm',
  'channels',
]
