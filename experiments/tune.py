"""Tunes every optimizer of a study at the same budget, chooses each one's winner on a
validation split and reruns the winners on fresh seeds; rerun the same command to resume.

    python -m experiments.tune --study wrn16_4_paper --workdir runs/tune \\
        --data_dir /usr/share/datasets/fashion-mnist

Writes ``WORKDIR/trials/<optimizer>/`` (``trials.json``, the drawn settings, and a run
directory per trial), ``WORKDIR/reruns/<optimizer>/seed=<s>/``, ``WORKDIR/tuning.json``
(winners, settings, every trial's validation accuracy), ``WORKDIR/report.md`` and, with
matplotlib, ``WORKDIR/trials.png`` (docs/tuning.md). ``--optimizers`` restricts the
search to some of the study's optimizers, ``--trials_only`` stops before the reruns.
``--report_only`` trains nothing: it writes ``tuning.json`` and the report from the runs
already in WORKDIR (a search under way, or the committed runs of
``results/tuning_wrn16_4_paper``); with ``--copy_from SEARCH_WORKDIR`` it first copies the
records of that search's finished runs into WORKDIR. ``--paste_into docs/reproduction.md``
puts the report into that page too, between its ``<!-- tuning-report:begin -->`` and
``<!-- tuning-report:end -->`` lines. Exit status as ``experiments.train``'s.
"""

from absl import app, flags

from experiments import config_flags, launch
from padam_jax.tuning import studies

_STUDY = flags.DEFINE_enum(
  'study',
  None,
  sorted(studies.STUDIES),
  '; '.join(f'{name}: {s.description}' for name, s in studies.STUDIES.items()),
)
_OPTIMIZERS = flags.DEFINE_list(
  'optimizers', None, 'Only these of the study\'s optimizers (default: all of them).'
)
_TRIALS_ONLY = flags.DEFINE_bool(
  'trials_only', False, 'Train the trials and choose the winners, but do not rerun them.'
)
_REPORT_ONLY = flags.DEFINE_bool(
  'report_only',
  False,
  'Train nothing: write tuning.json and the report from the runs already in --workdir.',
)
_COPY_FROM = flags.DEFINE_string(
  'copy_from',
  None,
  'With --report_only: first copy the records (config.json, metrics.jsonl; each search\'s '
  'trials.json) of every finished run of this search workdir into --workdir.',
)
_PASTE_INTO = flags.DEFINE_list(
  'paste_into',
  [],
  'Markdown pages to paste the report into, between their <!-- tuning-report:begin --> and '
  '<!-- tuning-report:end --> lines.',
)
config_flags.define_flags(('data_dir',))


def main(argv):
  del argv
  from padam_jax.tuning import run

  launch.start()
  if _STUDY.value is None:  # marked required
    raise app.UsageError('--study is required')
  study = studies.STUDIES[_STUDY.value]
  if _REPORT_ONLY.value and (_OPTIMIZERS.value or _TRIALS_ONLY.value):
    raise app.UsageError('--report_only reports every optimizer: drop --optimizers, --trials_only')
  if _COPY_FROM.value and not _REPORT_ONLY.value:
    raise app.UsageError('--copy_from copies finished runs for a report: add --report_only')
  with launch.failing_on((*launch.SETUP_ERRORS, *launch.TRAINING_ERRORS, OSError)):
    if _REPORT_ONLY.value:
      run.report_study(
        study,
        launch.workdir(),
        progress=launch.say,
        paste_into=_PASTE_INTO.value,
        copy_from=_COPY_FROM.value or None,
      )
      return
    run.run_study(
      study,
      launch.workdir(),
      optimizers=_OPTIMIZERS.value,
      trials_only=_TRIALS_ONLY.value,
      data_dir=config_flags.config_from_flags().data_dir,
      progress=launch.say,
      tensorboard=launch.tensorboard(),
      paste_into=_PASTE_INTO.value,
    )


if __name__ == '__main__':
  flags.mark_flags_as_required(['study', 'workdir'])
  launch.run(main)
