"""The claims of each protocol, as data: what is claimed of which runs, and by which measure.

Three protocols: the student reproduction's claims (the ``reproduction`` preset: weight
decay 0.005, a constant learning rate), the original paper's, Chen & Gu's (the ``paper``
preset: weight decay 5e-4, lr x0.1 at 50% and 75% of the epochs), and the confound split
(the ``reproduction_paper_wd`` preset between them: weight decay 5e-4, a constant lr),
whose rows set its runs against the other two presets' (``Claim.sources``).

A :class:`Claim` is a linear contrast ``x`` of per-run values over curves of the
reproduction (:class:`padam_jax.reproduction.suites.Curve`), averaged over seeds, and a
claimed direction or margin. The per-run values are ``measures.MEASURES``; every
test-accuracy claim is listed twice, by the mean of the last sixth of the epochs (the
primary measure) and by the median of the last third (steadier; fixed before the
converged runs). :mod:`padam_jax.reproduction.judging` judges them on runs,
:mod:`padam_jax.reproduction.claims_table` writes the table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from padam_jax.reproduction import suites

# Accuracy points: "within 1 point" (the reproduction's Table 2 reading), and the margin of
# the "not above" / "at least" claims (x < 1, x > -1): a difference smaller than a point is
# no outperforming.
EQUIVALENCE_MARGIN = 1.0
# "As low a train loss as": at most this fraction above (x = padam - (1 + f) * adam < 0).
LOSS_MARGIN = 0.05
SECOND_MEASURE = {
  'final_accuracy': 'median_late_accuracy',
  'early_accuracy': 'early_median_accuracy',
}
CONFIDENCE = 0.95
# Table 2's seed count was set after a look at 3 seeds (docs/reproduction.md): every row
# read from its runs gives each of the two looks half of the 5% error rate.
TWO_LOOKS_CONFIDENCE = 0.975
TABLE2_SWEEPS = frozenset(f'wrn16_4-{o}' for o in suites.OPTIMIZERS)


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Whose claims are checked under a preset (a key of ``PROTOCOLS``)."""

  source: str  # whose claims, e.g. 'the student reproduction'
  settings: str  # what the preset trains with, in words


PROTOCOLS = {
  'reproduction': Protocol(
    'the student reproduction', 'weight decay 0.005, constant learning rate'
  ),
  'paper': Protocol(
    'Chen & Gu', 'weight decay 5e-4, learning rate x0.1 at 50% and 75% of the epochs'
  ),
  'reproduction_paper_wd': Protocol(
    'the confound split',
    'weight decay 5e-4, constant learning rate: the arm between the two presets',
  ),
}


@dataclasses.dataclass(frozen=True)
class Claim:
  """``x = sum(coefficient * mean over seeds of measure(curve))`` is claimed ``kind``.

  ``margin``: for 'within', ``-margin < x < margin``; for 'greater', ``x > -margin`` (not
  more than ``margin`` below: "at least"); for 'less', ``x < margin`` ("not above").
  """

  claim: str  # the claim in short, and where it is made
  measure: str  # a key of padam_jax.reproduction.measures.MEASURES
  terms: tuple[tuple[float, suites.Curve], ...]
  kind: str  # stats.KINDS
  margin: float = 0.0
  contrast: str = ''  # how the contrast reads, e.g. 'padam - adam'
  confidence: float = CONFIDENCE  # of the interval the verdict reads
  # The protocol whose workdir each term's curve reads (one per term); empty: the claim's own.
  sources: tuple[str, ...] = ()
  # The one-line table's words and cell: the row this claim shares with the same claim on
  # other networks (empty: ``claim`` without "on <network>"), and how a cell names this
  # contrast where its contrasts' verdicts differ (empty: ``contrast``).
  headline: str = ''
  label: str = ''

  @property
  def network(self) -> str:
    """The network (a key of ``NETWORK_NAMES``) every term's curve trains."""
    models = {curve.sweep.split('-')[0] for _, curve in self.terms}
    if len(models) != 1:
      raise ValueError(f'{self.claim!r} reads curves of several networks: {sorted(models)}')
    return models.pop()

  @property
  def row(self) -> str:
    """The claim's words in the one-line table, where a column names the network."""
    return self.headline or re.sub(f',? on {NETWORK_NAMES[self.network]}', '', self.claim)

  @property
  def cell_label(self) -> str:
    """How a one-line table's cell names this contrast."""
    return self.label or self.contrast

  @property
  def threshold(self) -> float:
    """What ``x`` is compared with: 0, or ``-margin`` ('greater') / ``+margin`` ('less')."""
    return {'greater': -self.margin, 'less': self.margin}.get(self.kind, 0.0) + 0.0  # no -0


def _pair(
  claim: str,
  measure: str,
  kind: str,
  first: suites.Curve,
  second: suites.Curve,
  margin: float = 0.0,
  scale: float = 1.0,
) -> Claim:
  """``x = first - scale * second``."""
  times = '' if scale == 1.0 else f'{scale:g} x '
  return Claim(
    claim,
    measure,
    ((1.0, first), (-scale, second)),
    kind,
    margin,
    f'{first.label} - {times}{second.label}',
  )


def _p_lr(p: float, lr: float) -> suites.Curve:
  return suites.Curve(
    f'p 1/{round(1 / p)} lr {lr:g}', 'resnet18-padam-p-lr', (('partial', p), ('learning_rate', lr))
  )


def _vgg_p(p: float) -> suites.Curve:
  return suites.Curve(f'p 1/{round(1 / p)}', 'vgg16-padam-p', (('partial', p),))


def with_second_measures(claims: Iterable[Claim]) -> tuple[Claim, ...]:
  """Each claim, and after each test-accuracy claim the same claim by the second measure."""
  rows = []
  for claim in claims:
    rows.append(claim)
    if claim.measure in SECOND_MEASURE:
      rows.append(dataclasses.replace(claim, measure=SECOND_MEASURE[claim.measure]))
  return tuple(rows)


def with_measure(claim: Claim, measure: str) -> tuple[Claim, Claim]:
  """``claim`` and the same claim read by a further ``measure``."""
  return claim, dataclasses.replace(claim, measure=measure)


def corrected_for_two_looks(claims: Iterable[Claim]) -> tuple[Claim, ...]:
  """The rows that read Table 2's runs only, at ``TWO_LOOKS_CONFIDENCE``."""
  return tuple(
    dataclasses.replace(claim, confidence=TWO_LOOKS_CONFIDENCE)
    if {curve.sweep for _, curve in claim.terms} <= TABLE2_SWEEPS
    else claim
    for claim in claims
  )


NETWORK_NAMES = {'wrn16_4': 'WRN-16-4', 'resnet18': 'ResNet-18', 'vgg16': 'VGG-16'}
_OPTIMIZER_NAMES = {'adam': 'Adam', 'amsgrad': 'AMSGrad', 'sgdm': 'SGDM'}


def _table2_rows(wrn: dict[str, suites.Curve], before: str, after: str) -> list[Claim]:
  """Table 2's claims on the WRN-16-4 curves ``wrn``: Padam within 1 point of Adam and
  AMSGrad, and above SGDM (``before`` and ``after`` frame each claim's words)."""
  return [
    *(
      _pair(
        f'{before}Padam is within 1 point of Adam and AMSGrad on WRN-16-4{after}',
        'final_accuracy',
        'within',
        wrn['padam'],
        wrn[other],
        EQUIVALENCE_MARGIN,
      )
      for other in ('adam', 'amsgrad')
    ),
    _pair(
      f'{before}Padam is above SGDM on WRN-16-4{after}',
      'final_accuracy',
      'greater',
      wrn['padam'],
      wrn['sgdm'],
    ),
  ]


def _reproduction_claims() -> tuple[Claim, ...]:
  """Every checkable sentence of the student reproduction (docs/reproduction.md lists the
  sentences left out, and why)."""
  curves = {m: {c.label: c for c in suites.optimizer_curves(m)} for m in suites.ARCHITECTURES}
  wrn = curves['wrn16_4']
  rows = _table2_rows(wrn, '', ' (Table 2)')
  rows += [
    _pair(
      'Padam is the best of the four at a quarter of the run on WRN-16-4 (Table 2\'s first '
      'column: 88.07 at epoch 25 of 100)',
      'early_accuracy',
      'greater',
      wrn['padam'],
      wrn[other],
    )
    for other in ('adam', 'amsgrad', 'sgdm')
  ]
  for model, where in (('wrn16_4', 'Figure 1'), ('resnet18', 'Figure 1: "similar result"')):
    for other in ('sgdm', 'adam', 'amsgrad'):
      lowest = _pair(
        'Padam\'s train loss is the lowest during the whole run on '
        f'{NETWORK_NAMES[model]} ({where})',
        'mean_train_loss',
        'less',
        curves[model]['padam'],
        curves[model][other],
      )
      headline = 'Padam\'s train loss is the lowest during the whole run (Figure 1)'
      rows += with_measure(dataclasses.replace(lowest, headline=headline), 'train_loss_each_epoch')
  rows += [
    _pair(
      'Padam\'s train loss is below Adam\'s and AMSGrad\'s before the 30th of 100 epochs on '
      'VGG-16 (Figure 1)',
      'early_train_loss',
      'less',
      curves['vgg16']['padam'],
      curves['vgg16'][other],
    )
    for other in ('adam', 'amsgrad')
  ]
  rows += [
    _pair(
      f'SGDM does not end above Adam and AMSGrad on {NETWORK_NAMES[model]} (Figure 1: "we cannot '
      'observe SGDM outperform Adam and AMSGrad during the late stage")',
      'final_accuracy',
      'less',
      curves[model]['sgdm'],
      curves[model][other],
      EQUIVALENCE_MARGIN,
    )
    for model in suites.ARCHITECTURES
    for other in ('adam', 'amsgrad')
  ]
  sixteenth, eighth, quarter = 0.0625, 0.125, 0.25
  sixteenth_best = (
    'At lr 0.1, p = 1/16 beats p = 1/8 and p = 1/4 (VGG-16: Section 3.5\'s grid search; '
    'ResNet-18: Figure 2\'s caption)'
  )
  rows += [
    dataclasses.replace(
      _pair(
        'At lr 0.1, p = 1/16 beats p = 1/8 and p = 1/4 on VGG-16 (Section 3.5\'s grid search)',
        'final_accuracy',
        'greater',
        _vgg_p(sixteenth),
        _vgg_p(other),
      ),
      headline=sixteenth_best,
    )
    for other in (eighth, quarter)
  ]
  rows += [
    dataclasses.replace(
      _pair(
        'At lr 0.1, p = 1/16 beats p = 1/8 and p = 1/4 on ResNet-18 (Figure 2\'s caption)',
        'final_accuracy',
        'greater',
        _p_lr(sixteenth, 0.1),
        _p_lr(other, 0.1),
      ),
      headline=sixteenth_best,
    )
    for other in (eighth, quarter)
  ]
  rows += [
    _pair(
      'With p = 1/16 a larger lr gives a lower test error (Figure 3)',
      'final_accuracy',
      'greater',
      _p_lr(sixteenth, 0.1),
      _p_lr(sixteenth, 0.001),
    ),
    _pair(
      'With p = 1/16 a larger lr gives a lower train loss (Figure 3)',
      'mean_train_loss',
      'less',
      _p_lr(sixteenth, 0.1),
      _p_lr(sixteenth, 0.001),
    ),
    _pair(
      'With p = 1/4, the p nearest 1/2 tried, a smaller lr performs better (Figure 3)',
      'final_accuracy',
      'greater',
      _p_lr(quarter, 0.001),
      _p_lr(quarter, 0.1),
    ),
    Claim(
      'Small p prefers a large lr, p near 1/2 a small one (Figure 3)',
      'final_accuracy',
      (
        (1.0, _p_lr(sixteenth, 0.1)),
        (-1.0, _p_lr(sixteenth, 0.001)),
        (-1.0, _p_lr(quarter, 0.1)),
        (1.0, _p_lr(quarter, 0.001)),
      ),
      'greater',
      contrast='(p 1/16: lr 0.1 - lr 0.001) - (p 1/4: lr 0.1 - lr 0.001)',
    ),
    _pair(
      'The p schedule (1/4 -> 1/16, lr 0.01 -> 0.1) beats fixed p (the reproduction\'s proposal)',
      'final_accuracy',
      'greater',
      suites.Curve('p schedule', 'resnet18-padam-p-schedule'),
      suites.padam_curve('resnet18', 'p 1/8 lr 0.1'),
    ),
    _pair(
      'The p schedule beats the fixed p it ends at, p = 1/16 at lr 0.1 (a reading of its proposal)',
      'final_accuracy',
      'greater',
      suites.Curve('p schedule', 'resnet18-padam-p-schedule'),
      _p_lr(sixteenth, 0.1),
    ),
  ]
  return corrected_for_two_looks(with_second_measures(rows))


def _paper_claims() -> tuple[Claim, ...]:
  """Chen & Gu's claims, on each network under their preset: Padam "can maintain fast
  convergence rate as Adam/Amsgrad while generalizing as well as SGD"; and "level with"
  as an equivalence reading of the gap closed."""
  rows: list[Claim] = []
  for model in ('wrn16_4', 'resnet18', 'vgg16'):
    curves = {o: suites.Curve(o, f'{model}-{o}') for o in suites.OPTIMIZERS}
    name = NETWORK_NAMES[model]
    rows.append(
      _pair(
        'Padam generalizes as well as SGDM: its test accuracy is at least SGDM\'s, not more '
        f'than 1 point below, on {name}',
        'final_accuracy',
        'greater',
        curves['padam'],
        curves['sgdm'],
        EQUIVALENCE_MARGIN,
      )
    )
    rows += [
      _pair(
        'Padam closes the generalization gap: its test accuracy is above Adam\'s and '
        f'AMSGrad\'s on {name}',
        'final_accuracy',
        'greater',
        curves['padam'],
        curves[other],
      )
      for other in ('adam', 'amsgrad')
    ]
    rows += [
      _pair(
        f'Padam is level with Adam and AMSGrad, within 1 point, on {name} (a reading of the '
        'gap closed, not a claim of the paper)',
        'final_accuracy',
        'within',
        curves['padam'],
        curves[other],
        EQUIVALENCE_MARGIN,
      )
      for other in ('adam', 'amsgrad')
    ]
    rows += [
      _pair(
        'Padam converges as fast as Adam and AMSGrad: its train loss early on (before the '
        f'first decay) is as low as theirs, at most {LOSS_MARGIN:.0%} above, on {name}',
        'early_paper_train_loss',
        'less',
        curves['padam'],
        curves[other],
        scale=1.0 + LOSS_MARGIN,
      )
      for other in ('adam', 'amsgrad')
    ]
  return with_second_measures(rows)


def _gap(other: str, protocol: str) -> tuple[tuple[float, suites.Curve, str], ...]:
  """The terms of ``padam - other`` on WRN-16-4 under ``protocol``."""
  return (
    (1.0, suites.Curve('padam', 'wrn16_4-padam'), protocol),
    (-1.0, suites.Curve(other, f'wrn16_4-{other}'), protocol),
  )


def _split_claims() -> tuple[Claim, ...]:
  """The confound split on WRN-16-4: the gap between Padam and each other optimizer at
  weight decay 5e-4 and a constant lr, and what each of the two differences between the
  presets (the weight decay, the lr schedule) does to it."""
  arm, wd_name = 'reproduction_paper_wd', 'weight decay 5e-4, a constant lr'
  wrn = {o: suites.Curve(o, f'wrn16_4-{o}') for o in suites.OPTIMIZERS}
  rows = _table2_rows(wrn, f'At {wd_name}, ', '')
  for other in ('adam', 'amsgrad', 'sgdm'):
    for factor, new, old, confidence in (
      ('the weight decay (0.005 -> 5e-4, at a constant lr)', arm, 'reproduction', 0.975),
      (
        'the lr schedule (constant -> x0.1 at 50% and 75%, at weight decay 5e-4)',
        'paper',
        arm,
        CONFIDENCE,
      ),
    ):
      terms = (*_gap(other, new), *((-a, c, p) for a, c, p in _gap(other, old)))
      rows.append(
        Claim(
          f'Changing {factor} raises Padam\'s test accuracy relative to '
          f'{_OPTIMIZER_NAMES[other]}\'s on WRN-16-4',
          'final_accuracy',
          tuple((a, c) for a, c, _ in terms),
          'greater',
          contrast=f'(padam - {other}, {new}) - (padam - {other}, {old})',
          confidence=confidence,
          sources=tuple(p for _, _, p in terms),
          headline=f'Changing {factor} raises Padam\'s test accuracy relative to the others\'',
          label=f'vs {_OPTIMIZER_NAMES[other]}',
        )
      )
  return with_second_measures(rows)


CLAIMS = _reproduction_claims()
PAPER_CLAIMS = _paper_claims()
SPLIT_CLAIMS = _split_claims()
CLAIM_SETS = {'reproduction': CLAIMS, 'paper': PAPER_CLAIMS, 'reproduction_paper_wd': SPLIT_CLAIMS}
