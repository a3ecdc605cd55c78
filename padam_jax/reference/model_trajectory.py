"""Whole training steps of a model in JAX and in its PyTorch twin, compared step by step.

Both frameworks start from the same weights (ours, copied into the twin by
:mod:`padam_jax.reference.convert`) and train on the same images: our on-device
augmentation (:func:`padam_jax.data.augment`) produces each batch once, and both
take that batch, so what is left to differ is the model (forward, backward through
BatchNorm in train mode, the running statistics) and the optimizer (coupled weight
decay on every parameter, the update). After each step we compare the parameters,
the BatchNorm running statistics and the logits of a fixed batch of test images in
eval mode, each as the largest ``|ours - theirs|_inf / |theirs|_inf`` over leaves.

Tolerances (``TOLERANCES``), at most 20 steps, widths up to 1/4, batches of 8-16:

* float64: 1e-8. The deviation is round-off amplified by training: measured 1e-15 to
  1e-12 after 20 steps (README, *Cross-framework validation*).
* float32: 1e-3. Chosen from ``python -m experiments.crosscheck --dtype float32``: the
  logits and statistics start at ~1e-6 (round-off of a different summation order), and
  training amplifies the difference, by up to ~30x in 20 steps (SGDM at lr 0.1 grows
  fastest). The largest measured deviation after 20 steps was 2e-4 (README table), so
  1e-3 leaves a 5x margin while still failing a wrong setting: a BatchNorm momentum or a
  weight decay off by 1% already moves the statistics or parameters by more than that
  in float64, and float32 round-off alone never reaches it within 20 steps.

Our step is written here from the model and optimizer pieces rather than taken from
``padam_jax.train.train_step``, which augments inside the step and computes the loss in
float32 whatever the compute dtype (float64 would then agree only to float32 round-off);
``tests/test_model_crosscheck.py`` checks that in float32 the two steps agree.
torch is imported only by the functions that run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from padam_jax import config as config_lib
from padam_jax import data as data_lib
from padam_jax import models

# Largest relative deviation allowed after up to 20 steps (see the module docstring).
TOLERANCES = {'float64': 1e-8, 'float32': 1e-3}
DTYPES = tuple(TOLERANCES)
# The seed's weight decay (its Table 1), the stronger of the two presets.
DEFAULT_WEIGHT_DECAY = config_lib.PRESETS['seed']['weight_decay']

Flat = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Spec:
  """One cross-framework run: model, optimizer, dtype and how many steps of which batches."""

  model: str = 'resnet18'
  width: float = 0.25
  optimizer: str = 'padam'
  dtype: str = 'float64'
  steps: int = 20
  batch_size: int = 16
  learning_rate: Optional[float] = None  # None: the seed's Table 1 for the optimizer
  partial: float = config_lib.DEFAULT_PARTIAL
  weight_decay: float = DEFAULT_WEIGHT_DECAY
  seed: int = 0

  def __post_init__(self):
    if self.dtype not in DTYPES:
      raise ValueError(f'dtype must be one of {DTYPES}, got {self.dtype!r}')
    if self.steps < 1 or self.batch_size < 2:
      raise ValueError('steps must be >= 1 and batch_size >= 2 (BatchNorm in train mode)')

  @property
  def lr(self) -> float:
    if self.learning_rate is not None:
      return self.learning_rate
    return config_lib.DEFAULT_LEARNING_RATES[self.optimizer]

  def optimizers(self, **overrides: float) -> tuple[optax.GradientTransformation, Callable]:
    """Our optimizer and a ``make_optimizer`` for its PyTorch twin (``optimizer_twins``).

    ``overrides`` replace ``learning_rate``, ``weight_decay`` or ``partial``.
    """
    from padam_jax.reference import trajectory  # pylint: disable=import-outside-toplevel

    settings = dict(learning_rate=self.lr, weight_decay=self.weight_decay,
                    partial=self.partial)
    return trajectory.optimizer_twins(self.optimizer, **{**settings, **overrides})


class Batches(NamedTuple):
  """Augmented training batches ``[K, B, H, W, 3]``, labels ``[K, B]``, a fixed eval batch."""

  images: np.ndarray
  labels: np.ndarray
  eval_images: np.ndarray


class Snapshot(NamedTuple):
  """What one framework holds after a step (Flax layout, leaves keyed ``'a/b/kernel'``)."""

  loss: float
  params: Flat
  batch_stats: Flat
  eval_logits: np.ndarray


class Row(NamedTuple):
  """One step of the comparison: both losses and three maximum relative deviations."""

  step: int
  loss_jax: float
  loss_torch: float
  params: float
  batch_stats: float
  eval_logits: float

  @property
  def deviation(self) -> float:
    """The largest of the three deviations (NaN if any is NaN)."""
    return float(np.max([self.params, self.batch_stats, self.eval_logits]))


def _precision(dtype: str) -> contextlib.AbstractContextManager:
  """float64 needs jax's x64 mode; float32 runs without it."""
  return jax.enable_x64(dtype == 'float64')


def flatten(tree: Any) -> Flat:
  """A nested dict of arrays as ``{"a/b/kernel": numpy array}``."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')
  return {k: np.asarray(v) for k, v in flat.items()}


def make_batches(dataset: data_lib.Dataset, spec: Spec) -> Batches:
  """``spec.steps`` shuffled, augmented training batches and the first test images.

  Each batch is augmented once on the device (random crop with 4-pixel zero padding,
  flip, normalisation; float32), then cast to ``spec.dtype``. The eval batch is the
  first ``spec.batch_size`` test images, normalised.
  """
  key = jax.random.key(spec.seed)
  per_epoch = dataset.num_train // spec.batch_size
  epochs = -(-spec.steps // per_epoch)
  indices = np.concatenate([
    np.asarray(data_lib.epoch_batches(jax.random.fold_in(key, e), dataset.num_train,
                                      spec.batch_size, drop_remainder=True)[0])
    for e in range(epochs)])[:spec.steps]
  augment = jax.jit(functools.partial(data_lib.augment, mean=dataset.mean, std=dataset.std))
  with _precision('float32'):
    images = np.stack([np.asarray(augment(jax.random.fold_in(key, 1000 + t),
                                          dataset.train_images[rows]))
                       for t, rows in enumerate(indices)])
    eval_images = np.asarray(data_lib.normalize(dataset.test_images[:spec.batch_size],
                                                dataset.mean, dataset.std))
  return Batches(images.astype(spec.dtype), dataset.train_labels[indices],
                 eval_images.astype(spec.dtype))


@functools.cache
def init_variables(model: str, width: float, num_classes: int, seed: int) -> dict[str, Any]:
  """Our initial ``params`` and ``batch_stats`` (float32, numpy): the models' own init rules.

  The key is an 'rbg' key: the same rules, compiled about four times faster than with the
  default threefry key (the draws differ from a training run's; both frameworks get them).
  """
  module = models.get_model(model, num_classes=num_classes, width=width)
  with _precision('float32'):
    init = jax.jit(lambda key: module.init(key, jnp.zeros((1, 32, 32, 3)), train=False))
    variables = init(jax.random.key(seed, impl='rbg'))
  return jax.tree.map(np.asarray, flax.core.unfreeze(variables))


@functools.cache
def _programs(model: str, width: float, num_classes: int, dtype: str
              ) -> tuple[Callable, Callable]:
  """Jitted (loss, grads, new statistics) and eval logits; shared by every optimizer."""
  module = models.get_model(model, num_classes=num_classes, width=width,
                            dtype=jnp.dtype(dtype))

  def loss_fn(params, batch_stats, x, labels):
    logits, updates = module.apply({'params': params, 'batch_stats': batch_stats}, x,
                                   train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, updates['batch_stats']

  def logits_fn(params, batch_stats, x):
    return module.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)

  return jax.jit(jax.value_and_grad(loss_fn, has_aux=True)), jax.jit(logits_fn)


def jax_steps(spec: Spec, variables: dict[str, Any], tx: optax.GradientTransformation,
              batches: Batches, num_classes: int = 10) -> Iterator[Snapshot]:
  """Trains our model with ``tx`` on ``batches``; yields a snapshot after every step."""
  grad_fn, logits_fn = _programs(spec.model, spec.width, num_classes, spec.dtype)

  def apply(params, grads, opt_state):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  apply = jax.jit(apply)
  with _precision(spec.dtype):
    cast = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, spec.dtype), tree)  # noqa: E731
    params, stats = cast(variables['params']), cast(variables['batch_stats'])
    opt_state = tx.init(params)
  for x, labels in zip(batches.images, batches.labels):
    with _precision(spec.dtype):
      (loss, stats), grads = grad_fn(params, stats, x, labels)
      params, opt_state = apply(params, grads, opt_state)
      logits = logits_fn(params, stats, batches.eval_images)
      snapshot = Snapshot(float(loss), flatten(params), flatten(stats), np.asarray(logits))
    yield snapshot


def torch_twin(spec: Spec, variables: dict[str, Any], num_classes: int = 10):
  """The PyTorch twin of ``spec.model`` in ``spec.dtype``, holding ``variables``."""
  import torch  # pylint: disable=import-outside-toplevel

  from padam_jax.reference.convert import flax_to_torch  # pylint: disable=import-outside-toplevel
  from padam_jax.reference.models import get_torch_model  # pylint: disable=import-outside-toplevel

  module = get_torch_model(spec.model, num_classes=num_classes, width=spec.width)
  return flax_to_torch(variables, module.to(getattr(torch, spec.dtype)))


def torch_steps(module, make_optimizer: Callable, batches: Batches,
                variables: dict[str, Any]) -> Iterator[Snapshot]:
  """Trains the twin ``module`` on ``batches``; yields a snapshot after every step.

  ``make_optimizer(parameters)`` builds the torch optimizer; ``variables`` (ours) is the
  template the twin's state is read back into.
  """
  import torch  # pylint: disable=import-outside-toplevel

  from padam_jax.reference.convert import torch_to_flax  # pylint: disable=import-outside-toplevel

  nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
  optimizer = make_optimizer(list(module.parameters()))
  eval_images = nchw(batches.eval_images)
  dtype = str(batches.images.dtype)
  for x, labels in zip(batches.images, batches.labels):
    module.train()
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(module(nchw(x)),
                                             torch.from_numpy(labels.astype(np.int64)))
    loss.backward()
    optimizer.step()
    module.eval()
    with torch.no_grad():
      logits = module(eval_images).numpy()
    with _precision(dtype):
      state = torch_to_flax(module, variables)
    yield Snapshot(loss.item(), flatten(state['params']), flatten(state['batch_stats']), logits)


def relative_deviation(ours: Flat | np.ndarray, theirs: Flat | np.ndarray) -> float:
  """Largest ``|ours - theirs|_inf / |theirs|_inf`` over the leaves (an array is one leaf)."""
  if isinstance(ours, np.ndarray):
    ours, theirs = {'': ours}, {'': theirs}
  if ours.keys() != theirs.keys():
    raise ValueError(f'leaves differ: {sorted(ours.keys() ^ theirs.keys())}')
  worst = 0.0
  for key, reference in theirs.items():
    reference = np.asarray(reference, np.float64)
    scale = max(float(np.abs(reference).max(initial=0.0)), np.finfo(np.float64).tiny)
    difference = np.abs(np.asarray(ours[key], np.float64) - reference).max(initial=0.0)
    worst = max(worst, float(difference) / scale)
  return worst


def compare(step: int, ours: Snapshot, theirs: Snapshot) -> Row:
  """The row of the comparison table for one step."""
  return Row(step, ours.loss, theirs.loss, relative_deviation(ours.params, theirs.params),
             relative_deviation(ours.batch_stats, theirs.batch_stats),
             relative_deviation(ours.eval_logits, theirs.eval_logits))


def prepare(spec: Spec, dataset: data_lib.Dataset) -> tuple[Batches, dict[str, Any]]:
  """The batches and our initial variables (numpy, in ``spec.dtype``) for ``spec``."""
  variables = init_variables(spec.model, spec.width, dataset.num_classes, spec.seed)
  variables = jax.tree.map(lambda v: np.asarray(v, spec.dtype), variables)
  return make_batches(dataset, spec), variables


def compare_all(ours: Iterable[Snapshot], theirs: Iterable[Snapshot]) -> Iterator[Row]:
  """Rows of two trajectories taken in lockstep (steps numbered from 1)."""
  for step, (a, b) in enumerate(zip(ours, theirs), start=1):
    yield compare(step, a, b)


def run(spec: Spec, dataset: data_lib.Dataset) -> Iterator[Row]:
  """Trains ``spec`` in both frameworks in lockstep; yields one ``Row`` per step."""
  batches, variables = prepare(spec, dataset)
  tx, make_torch_optimizer = spec.optimizers()
  ours = jax_steps(spec, variables, tx, batches, dataset.num_classes)
  theirs = torch_steps(torch_twin(spec, variables, dataset.num_classes),
                       make_torch_optimizer, batches, variables)
  yield from compare_all(ours, theirs)


TABLE_HEADER = ('| step | loss JAX | loss PyTorch | params | BN statistics | eval logits |\n'
                '|---:|---:|---:|---:|---:|---:|')


def table_row(row: Row) -> str:
  """One Markdown row (losses to 6 decimals, deviations to 2 significant digits)."""
  return (f'| {row.step} | {row.loss_jax:.6f} | {row.loss_torch:.6f} | {row.params:.1e} | '
          f'{row.batch_stats:.1e} | {row.eval_logits:.1e} |')
