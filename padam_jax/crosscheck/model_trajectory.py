"""Whole training steps of a model in JAX and in its PyTorch twin, compared step by step.

Both frameworks start from the same weights (ours, copied into the twin by
:mod:`padam_jax.reference.convert`) and train on the same images: our on-device
augmentation (:func:`padam_jax.data.augment`) produces each batch once, and both
take that batch, so what is left to differ is the model (forward, backward through
BatchNorm in train mode, the running statistics) and the optimizer (coupled weight
decay on every parameter, the update). After each step we compare the parameters,
the BatchNorm running statistics and the logits of a fixed batch of test images in
eval mode, each as the largest ``|ours - theirs|_inf / |theirs|_inf`` over leaves.

Tolerances (``TOLERANCES``, applied by ``judge``; the runs that chose them:
docs/measurements.md#crosscheck-tolerances):

* float64: the frameworks may differ by at most 1e-8. They start at round-off apart and
  training amplifies the difference; a ReLU input that close to zero can then switch sides
  in one run only, after which the runs part. That is the dynamics, not the code (our own
  run, its initial weights nudged, ``run(..., nudge=1e-15)``, parts from itself as fast),
  so 1e-8 holds over 20 steps where training amplifies round-off less than ~1e4-fold.
* float32: no fixed bound on JAX vs PyTorch can hold over 20 steps: within a few steps a
  ReLU input within float32 round-off of zero switches sides in one run only, and from then
  on the runs part as fast as training amplifies differences (as does our own float32 run
  from itself, nudged, and PyTorch's float32 run from its float64 run). So in float32 the
  twin also trains in float64 (which equals ours to 1e-8), and our float32 run must stay
  within ``FLOAT32_FACTOR`` (10) times PyTorch's float32 deviation from that reference, or
  within 1e-4, whichever is larger: 1e-4 is above what float32 round-off reaches in 20
  steps when no ReLU switches, and the factor covers the luck of which run switches first.

Our step is written here from the model and optimizer pieces rather than taken from
``padam_jax.training.steps.train_step``, which augments inside the step and computes the loss in
float32 whatever the compute dtype (float64 would then agree only to float32 round-off);
``tests/test_model_crosscheck.py`` checks that in float32 the two steps agree.
torch is imported only by the functions that run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from padam_jax import alias, models
from padam_jax import data as data_lib
from padam_jax.crosscheck import trajectory
from padam_jax.training import config as config_lib

if TYPE_CHECKING:
  import torch

# float64: the largest deviation JAX vs PyTorch allowed; float32: the least allowed deviation
# of our float32 run from the float64 reference (see the module docstring and ``judge``).
TOLERANCES = {'float64': 1e-8, 'float32': 1e-4}
FLOAT32_FACTOR = 10.0
DTYPES = tuple(TOLERANCES)
# The reproduction's weight decay (its Table 1), the stronger of the two presets.
DEFAULT_WEIGHT_DECAY = config_lib.PRESETS['reproduction']['weight_decay']

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
  learning_rate: float | None = None  # None: the reproduction's Table 1 for the optimizer
  partial: float = config_lib.DEFAULT_PARTIAL
  weight_decay: float = DEFAULT_WEIGHT_DECAY
  seed: int = 0

  def __post_init__(self) -> None:
    if self.dtype not in DTYPES:
      raise ValueError(f'dtype must be one of {DTYPES}, got {self.dtype!r}')
    if self.steps < 1 or self.batch_size < 2:
      raise ValueError('steps must be >= 1 and batch_size >= 2 (BatchNorm in train mode)')

  @property
  def lr(self) -> float:
    if self.learning_rate is not None:
      return self.learning_rate
    return alias.registered(self.optimizer).default_learning_rate('reproduction')

  def optimizers(self, **overrides: float) -> tuple[optax.GradientTransformation, Callable]:
    """Our optimizer and a ``make_optimizer`` for its PyTorch twin (``optimizer_twins``).

    ``overrides`` replace ``learning_rate``, ``weight_decay`` or ``partial``.
    """
    settings = dict(learning_rate=self.lr, weight_decay=self.weight_decay, partial=self.partial)
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
  """One step: both losses, the three largest relative deviations JAX vs PyTorch and, in
  float32, each float32 run's largest deviation from the float64 reference."""

  step: int
  loss_jax: float
  loss_torch: float
  params: float
  batch_stats: float
  eval_logits: float
  jax_error: float | None = None
  torch_error: float | None = None

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
  return {k: np.array(v) for k, v in flat.items()}  # copies: torch updates in place


_augment = jax.jit(data_lib.augment)  # one program for every run (mean and std are traced)


def _jit(fn: Callable) -> Callable:
  """``jax.jit`` with LLVM at -O1: the programs here are small and compiled once per run, and
  on CPU they compile faster than at the default level and run as fast (measured:
  docs/measurements.md#crosscheck-compile)."""
  return jax.jit(fn, compiler_options={'xla_backend_optimization_level': 1})


def make_batches(dataset: data_lib.Dataset, spec: Spec) -> Batches:
  """``spec.steps`` shuffled, augmented training batches and the first test images.

  Each batch is augmented once on the device (random crop with 4-pixel zero padding,
  flip, normalisation; float32), then cast to ``spec.dtype``. The eval batch is the
  first ``spec.batch_size`` test images, normalised.
  """
  key = jax.random.key(spec.seed)
  per_epoch = dataset.num_train // spec.batch_size
  if per_epoch < 1:
    raise ValueError(f'batch_size {spec.batch_size} exceeds the {dataset.num_train} examples')
  epochs = -(-spec.steps // per_epoch)
  indices = np.concatenate(
    [
      np.asarray(
        data_lib.epoch_batches(
          jax.random.fold_in(key, e), dataset.num_train, spec.batch_size, drop_remainder=True
        )[0]
      )
      for e in range(epochs)
    ]
  )[: spec.steps]
  mean, std = np.asarray(dataset.mean, np.float32), np.asarray(dataset.std, np.float32)
  with _precision('float32'):
    images = np.stack(
      [
        np.asarray(
          _augment(jax.random.fold_in(key, 1000 + t), dataset.train_images[rows], mean, std)
        )
        for t, rows in enumerate(indices)
      ]
    )
    eval_images = np.asarray(
      data_lib.normalize(dataset.test_images[: spec.batch_size], dataset.mean, dataset.std)
    )
  return Batches(
    images.astype(spec.dtype), dataset.train_labels[indices], eval_images.astype(spec.dtype)
  )


@functools.cache
def init_variables(model: str, width: float, num_classes: int, seed: int) -> dict[str, Any]:
  """Our initial ``params`` and ``batch_stats`` (float32, numpy): the models' own init rules.

  The key is an 'rbg' key, which compiles faster than the default threefry key (the draws
  differ from a training run's; both frameworks get the same ones), and the program runs
  once, so it is compiled without LLVM optimisations (measured:
  docs/measurements.md#crosscheck-compile).
  """
  module = models.get_model(model, num_classes=num_classes, width=width)
  with _precision('float32'):
    init = jax.jit(
      lambda key: module.init(key, jnp.zeros((1, 32, 32, 3)), train=False),
      compiler_options={'xla_backend_optimization_level': 0},
    )
    variables = init(jax.random.key(seed, impl='rbg'))
  return jax.tree.map(np.asarray, flax.core.unfreeze(variables))


@functools.cache
def _programs(model: str, width: float, num_classes: int, dtype: str) -> tuple[Callable, Callable]:
  """Jitted (loss, grads, new statistics) and eval logits; shared by every optimizer."""
  module = models.get_model(model, num_classes=num_classes, width=width, dtype=jnp.dtype(dtype))

  def loss_fn(
    params: optax.Params, batch_stats: Mapping[str, Any], x: jax.Array, labels: jax.Array
  ) -> tuple[jax.Array, Any]:
    logits, updates = module.apply(
      {'params': params, 'batch_stats': batch_stats}, x, train=True, mutable=['batch_stats']
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, updates['batch_stats']

  def logits_fn(params: optax.Params, batch_stats: Mapping[str, Any], x: jax.Array) -> jax.Array:
    # Without ``mutable``, ``apply`` returns the model's output alone.
    return cast(
      jax.Array, module.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
    )

  return _jit(jax.value_and_grad(loss_fn, has_aux=True)), _jit(logits_fn)


def jax_steps(
  spec: Spec,
  variables: dict[str, Any],
  tx: optax.GradientTransformation,
  batches: Batches,
  num_classes: int = 10,
) -> Iterator[Snapshot]:
  """Trains our model with ``tx`` on ``batches``; yields a snapshot after every step."""
  grad_fn, logits_fn = _programs(spec.model, spec.width, num_classes, spec.dtype)

  def apply(
    params: optax.Params, grads: optax.Updates, opt_state: optax.OptState
  ) -> tuple[optax.Params, optax.OptState]:
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  apply = _jit(apply)
  with _precision(spec.dtype):
    cast = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, spec.dtype), tree)  # noqa: E731
    params, stats = cast(variables['params']), cast(variables['batch_stats'])
    opt_state = tx.init(params)
  for x, labels in zip(batches.images, batches.labels, strict=True):
    with _precision(spec.dtype):
      (loss, stats), grads = grad_fn(params, stats, x, labels)
      params, opt_state = apply(params, grads, opt_state)
      logits = logits_fn(params, stats, batches.eval_images)
      snapshot = Snapshot(float(loss), flatten(params), flatten(stats), np.asarray(logits))
    yield snapshot


def torch_twin(spec: Spec, variables: dict[str, Any], num_classes: int = 10) -> torch.nn.Module:
  """The PyTorch twin of ``spec.model`` in ``spec.dtype``, holding ``variables``."""
  import torch

  from padam_jax.reference.convert import flax_to_torch
  from padam_jax.reference.models import get_torch_model

  module = get_torch_model(spec.model, num_classes=num_classes, width=spec.width)
  return flax_to_torch(variables, module.to(getattr(torch, spec.dtype)))


def torch_steps(
  module: torch.nn.Module, make_optimizer: Callable, batches: Batches, variables: dict[str, Any]
) -> Iterator[Snapshot]:
  """Trains the twin ``module`` on ``batches``; yields a snapshot after every step.

  ``make_optimizer(parameters)`` builds the torch optimizer; ``variables`` (ours) is the
  template the twin's state is read back into.
  """
  import torch

  from padam_jax.reference.convert import torch_to_flax

  nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
  optimizer = make_optimizer(list(module.parameters()))
  eval_images = nchw(batches.eval_images)
  dtype = str(batches.images.dtype)
  for x, labels in zip(batches.images, batches.labels, strict=True):
    module.train()
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(
      module(nchw(x)), torch.from_numpy(labels.astype(np.int64))
    )
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
  ours = {'': ours} if isinstance(ours, np.ndarray) else ours
  theirs = {'': theirs} if isinstance(theirs, np.ndarray) else theirs
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
  return Row(
    step,
    ours.loss,
    theirs.loss,
    relative_deviation(ours.params, theirs.params),
    relative_deviation(ours.batch_stats, theirs.batch_stats),
    relative_deviation(ours.eval_logits, theirs.eval_logits),
  )


def prepare(spec: Spec, dataset: data_lib.Dataset) -> tuple[Batches, dict[str, Any]]:
  """The batches and our initial variables (numpy, in ``spec.dtype``) for ``spec``."""
  variables = init_variables(spec.model, spec.width, dataset.num_classes, spec.seed)
  variables = jax.tree.map(lambda v: np.asarray(v, spec.dtype), variables)
  return make_batches(dataset, spec), variables


def compare_all(
  ours: Iterable[Snapshot],
  theirs: Iterable[Snapshot],
  reference: Iterable[Snapshot] | None = None,
) -> Iterator[Row]:
  """Rows of trajectories taken in lockstep (steps numbered from 1).

  With a (float64) ``reference``, each row also holds the deviation of ``ours`` and of
  ``theirs`` from it (``jax_error``, ``torch_error``).
  """
  pairs = zip(ours, theirs, strict=True)
  # Without a reference, an endless None stands in for it; with one, it has a snapshot per step.
  references = itertools.repeat(None) if reference is None else reference
  for step, ((a, b), r) in enumerate(zip(pairs, references, strict=reference is not None), 1):
    row = compare(step, a, b)
    if r is not None:
      row = row._replace(
        jax_error=compare(step, a, r).deviation, torch_error=compare(step, b, r).deviation
      )
    yield row


def as_float64(batches: Batches, variables: dict[str, Any]) -> tuple[Batches, dict[str, Any]]:
  """The same batches and variables in float64 (exact: float32 values are float64 values)."""
  cast = lambda a: a.astype(np.float64) if a.dtype == np.float32 else a  # noqa: E731
  return Batches(*map(cast, batches)), jax.tree.map(cast, variables)


def nudged(variables: dict[str, Any], scale: float, seed: int = 0) -> dict[str, Any]:
  """``variables`` with every value multiplied by ``1 + scale * N(0, 1)`` (numpy)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda v: (v * (1 + scale * rng.standard_normal(v.shape))).astype(v.dtype), variables
  )


def run(spec: Spec, dataset: data_lib.Dataset, nudge: float | None = None) -> Iterator[Row]:
  """Trains ``spec`` in both frameworks in lockstep; yields one ``Row`` per step.

  In float32 the PyTorch twin also trains in float64 from the same weights on the same
  batches, the reference both float32 runs are measured against. With ``nudge``, a
  control: the other run is not the twin but ours again, from initial weights
  ``nudged`` by that relative amount, which shows how fast training alone amplifies a
  difference (the ``loss_torch`` column is then that run's).
  """
  n = dataset.num_classes
  batches, variables = prepare(spec, dataset)
  tx, make_torch_optimizer = spec.optimizers()
  ours = jax_steps(spec, variables, tx, batches, n)
  if nudge is not None:
    again = jax_steps(spec, nudged(variables, nudge), spec.optimizers()[0], batches, n)
    yield from compare_all(ours, again)
    return
  theirs = torch_steps(torch_twin(spec, variables, n), make_torch_optimizer, batches, variables)
  reference = None
  if spec.dtype == 'float32':
    spec64 = dataclasses.replace(spec, dtype='float64')
    batches64, variables64 = as_float64(batches, variables)
    reference = torch_steps(
      torch_twin(spec64, variables64, n), spec64.optimizers()[1], batches64, variables64
    )
  yield from compare_all(ours, theirs, reference)


def judge(rows: Sequence[Row], dtype: str, tolerance: float | None = None) -> tuple[float, float]:
  """``(measured, allowed)`` for a run; it passes when ``measured <= allowed`` (not NaN).

  float64: the largest deviation JAX vs PyTorch over all steps, against ``tolerance``
  (default ``TOLERANCES['float64']``). float32: the largest deviation of our float32 run
  from the float64 reference, against ``FLOAT32_FACTOR`` times PyTorch's own (at least
  ``tolerance``, default ``TOLERANCES['float32']``).
  """
  tolerance = TOLERANCES[dtype] if tolerance is None else tolerance
  largest = lambda values: float(np.max(list(values)))  # noqa: E731  (NaN propagates)
  if dtype == 'float64':
    return largest(r.deviation for r in rows), tolerance
  theirs = largest(r.torch_error for r in rows)
  return largest(r.jax_error for r in rows), float(np.fmax(tolerance, FLOAT32_FACTOR * theirs))


_COLUMNS = ('step', 'loss JAX', 'loss PyTorch', 'params', 'BN statistics', 'eval logits')
_FLOAT32_COLUMNS = ('JAX f32 vs f64 reference', 'PyTorch f32 vs f64 reference')


def table_header(dtype: str) -> str:
  """The Markdown header of the per-step table (two more columns in float32)."""
  columns = _COLUMNS + (_FLOAT32_COLUMNS if dtype == 'float32' else ())
  return f'| {" | ".join(columns)} |\n|{"---:|" * len(columns)}'


def table_row(row: Row) -> str:
  """One Markdown row (losses to 6 decimals, deviations to 2 significant digits)."""
  cells = [
    str(row.step),
    f'{row.loss_jax:.6f}',
    f'{row.loss_torch:.6f}',
    *(f'{v:.1e}' for v in (row.params, row.batch_stats, row.eval_logits)),
  ]
  if row.jax_error is not None:
    cells += [f'{row.jax_error:.1e}', f'{row.torch_error:.1e}']
  return f'| {" | ".join(cells)} |'
