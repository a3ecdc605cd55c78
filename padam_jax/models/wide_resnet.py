"""WRN-16-4 as the Padam authors define it (their ResNet BasicBlock, three stages, He init)."""

from __future__ import annotations

from collections.abc import Sequence

from padam_jax.models.layers import Initializer, wrn_conv_init
from padam_jax.models.resnet import ResNet

DEPTH = 16
WIDEN_FACTOR = 4
BLOCKS_PER_STAGE = (DEPTH - 4) // 6  # 2


class WideResNet16_4(ResNet):
  """WRN-16-4: stem conv 3 -> 64, stages 64/128/256 (16k/32k/64k, k = 4) of two post-activation
  BasicBlocks each, strides 1/2/2, no dropout, 8x8 (global) average pool, linear 256 -> classes.

  Conv kernels are drawn from N(0, sqrt(2 / (k * k * out_channels))) (untruncated); BatchNorm
  starts at scale 1, offset 0; the linear layer keeps PyTorch's default init. Attributes as in
  ``ResNet``; only ``num_classes``, ``width`` and ``dtype`` are meant to be changed.
  """

  stem_features: int = 16 * WIDEN_FACTOR
  stage_features: Sequence[int] = (16 * WIDEN_FACTOR, 32 * WIDEN_FACTOR, 64 * WIDEN_FACTOR)
  stage_blocks: Sequence[int] = (BLOCKS_PER_STAGE,) * 3
  stage_strides: Sequence[int] = (1, 2, 2)
  kernel_init: Initializer | None = wrn_conv_init
