"""The authors' Padam update rule, re-written in PyTorch as a test oracle.

Follows uclaml/Padam ``Padam.py`` step for step (see docs/semantics.md,
*The update*): coupled L2, Adam moments, max over the raw second moment,
``denom = sqrt(v_max) + eps`` raised to ``2 * partial``, step size
``lr * sqrt(1 - b2**t) / (1 - b1**t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class Padam(torch.optim.Optimizer):
  """Reference Padam (the authors' numerics; ``exact_bias_correction`` optional)."""

  def __init__(
    self,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    lr: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = True,
    partial: float = 0.25,
    exact_bias_correction: bool = False,
  ) -> None:
    defaults = dict(
      lr=lr,
      betas=betas,
      eps=eps,
      weight_decay=weight_decay,
      amsgrad=amsgrad,
      partial=partial,
      exact_bias_correction=exact_bias_correction,
    )
    super().__init__(params, defaults)

  @torch.no_grad()
  def step(self, closure: Callable[[], float] | None = None) -> float | None:
    loss = None
    if closure is not None:
      with torch.enable_grad():
        loss = closure()
    for group in self.param_groups:
      beta1, beta2 = group['betas']
      partial = group['partial']
      for param in group['params']:
        if param.grad is None:
          continue
        grad = param.grad
        state = self.state[param]
        if not state:
          state['step'] = 0
          state['exp_avg'] = torch.zeros_like(param)
          state['exp_avg_sq'] = torch.zeros_like(param)
          if group['amsgrad']:
            state['max_exp_avg_sq'] = torch.zeros_like(param)
        state['step'] += 1
        if group['weight_decay'] != 0:
          grad = grad.add(param, alpha=group['weight_decay'])
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if group['amsgrad']:
          second = state['max_exp_avg_sq']
          torch.maximum(second, exp_avg_sq, out=second)
        else:
          second = exp_avg_sq
        denom = second.sqrt().add_(group['eps'])
        bias1 = 1 - beta1 ** state['step']
        bias2 = 1 - beta2 ** state['step']
        if group['exact_bias_correction']:
          step_size = group['lr'] * bias2**partial / bias1
        else:
          step_size = group['lr'] * math.sqrt(bias2) / bias1
        param.addcdiv_(exp_avg, denom ** (2 * partial), value=-step_size)
    return loss
