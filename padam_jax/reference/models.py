"""PyTorch twins of the Flax CIFAR models (same structure, layer names and width rounding)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from padam_jax.models.layers import channels
from padam_jax.models.vgg import VGG16_CONFIG
from padam_jax.models.wide_resnet import BLOCKS_PER_STAGE, WIDEN_FACTOR

# Layer names mirror the Flax modules (``stem_conv``, ``stage1_block1.conv1``, ``head``, ...),
# so that ``padam_jax.reference.convert`` can map variables by path.


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
  return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)


class VGG16(nn.Module):
  """VGG-16 (CIFAR): conv3x3 with bias + BN + ReLU per config entry, 2x2 max-pools,
  a no-op 1x1 average pool, linear head. PyTorch default init."""

  def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
    super().__init__()
    in_ch, i = 3, 0
    for v in VGG16_CONFIG:
      if v == 'M':
        continue
      i += 1
      out_ch = channels(int(v), width)
      self.add_module(f'conv{i}', _conv3x3(in_ch, out_ch, bias=True))
      self.add_module(f'bn{i}', nn.BatchNorm2d(out_ch))
      in_ch = out_ch
    self.head = nn.Linear(in_ch, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    i = 0
    for v in VGG16_CONFIG:
      if v == 'M':
        x = nn.functional.max_pool2d(x, 2, 2)
        continue
      i += 1
      x = torch.relu(getattr(self, f'bn{i}')(getattr(self, f'conv{i}')(x)))
    x = nn.functional.avg_pool2d(x, 1, 1)
    return self.head(x.flatten(1))


class BasicBlock(nn.Module):
  """conv-BN-ReLU-conv-BN + shortcut (identity or 1x1 conv + BN), then ReLU."""

  def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
    super().__init__()
    self.conv1 = _conv3x3(in_ch, out_ch, stride)
    self.bn1 = nn.BatchNorm2d(out_ch)
    self.conv2 = _conv3x3(out_ch, out_ch)
    self.bn2 = nn.BatchNorm2d(out_ch)
    self.shortcut_conv: nn.Module | None = None
    self.shortcut_bn: nn.Module | None = None
    if stride != 1 or in_ch != out_ch:
      self.shortcut_conv = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
      self.shortcut_bn = nn.BatchNorm2d(out_ch)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x
    if self.shortcut_conv is not None and self.shortcut_bn is not None:  # a projection
      shortcut = self.shortcut_bn(self.shortcut_conv(x))
    return torch.relu(y + shortcut)


class ResNet(nn.Module):
  """CIFAR ResNet of BasicBlocks; the defaults give ResNet-18 (PyTorch default init)."""

  def __init__(
    self,
    num_classes: int = 10,
    width: float = 1.0,
    stem_features: int = 64,
    stage_features: Sequence[int] = (64, 128, 256, 512),
    stage_blocks: Sequence[int] = (2, 2, 2, 2),
    stage_strides: Sequence[int] = (1, 2, 2, 2),
  ) -> None:
    super().__init__()
    in_ch = channels(stem_features, width)
    self.stem_conv = _conv3x3(3, in_ch)
    self.stem_bn = nn.BatchNorm2d(in_ch)
    self.block_names: list[str] = []
    stages = zip(stage_features, stage_blocks, stage_strides, strict=True)
    for s, (features, blocks, stride) in enumerate(stages, start=1):
      out_ch = channels(features, width)
      for b in range(1, blocks + 1):
        name = f'stage{s}_block{b}'
        self.add_module(name, BasicBlock(in_ch, out_ch, stride if b == 1 else 1))
        self.block_names.append(name)
        in_ch = out_ch
    self.head = nn.Linear(in_ch, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = torch.relu(self.stem_bn(self.stem_conv(x)))
    for name in self.block_names:
      x = getattr(self, name)(x)
    x = x.mean(dim=(2, 3))  # the 4x4 / 8x8 average pool covers the whole final map
    return self.head(x)


class ResNet18(ResNet):
  """ResNet-18 for CIFAR (PyTorch default init)."""

  def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
    super().__init__(num_classes, width)


class WideResNet16_4(ResNet):
  """WRN-16-4 as the Padam authors define it, with their He-normal conv init."""

  def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
    k = WIDEN_FACTOR
    super().__init__(
      num_classes,
      width,
      stem_features=16 * k,
      stage_features=(16 * k, 32 * k, 64 * k),
      stage_blocks=(BLOCKS_PER_STAGE,) * 3,
      stage_strides=(1, 2, 2),
    )
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        with torch.no_grad():
          m.weight.normal_(0.0, math.sqrt(2.0 / n))
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


TORCH_MODELS: dict[str, type[nn.Module]] = {
  'vgg16': VGG16,
  'resnet18': ResNet18,
  'wrn16_4': WideResNet16_4,
}


def get_torch_model(name: str, *, num_classes: int = 10, width: float = 1.0) -> nn.Module:
  """Builds the PyTorch twin of ``padam_jax.models.get_model(name, ...)`` (float32, CPU)."""
  if name not in TORCH_MODELS:
    raise ValueError(f'Unknown model {name!r}; valid names: {sorted(TORCH_MODELS)}.')
  return TORCH_MODELS[name](num_classes=num_classes, width=width)
