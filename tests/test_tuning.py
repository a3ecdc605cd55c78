"""The validation split, the quasi-random search and the selection on validation data."""

import math
import pathlib

import numpy as np
import pytest

from padam_jax import data, pages
from padam_jax.tuning import search, selection, studies

SPACE = search.SearchSpace(
  'padam',
  (search.Dimension('learning_rate', 1e-3, 1.0), search.Dimension('partial', 0.0, 0.5, 'linear')),
  fixed=(('weight_decay', 5e-4),),
)


def test_the_validation_split_overlaps_neither_training_nor_test_images():
  digits = data.load_dataset('digits')
  held = digits.split_validation(200)
  cut = held.subset(500, 100)
  assert (cut.num_train, cut.num_validation, cut.num_test) == (500, 200, 100)
  # Pixels identify an image: no validation image is a training or test image of the cut.
  seen = {image.tobytes() for image in (*cut.train_images, *cut.test_images)}
  duplicates_in_source = len(digits.train_images) - len({i.tobytes() for i in digits.train_images})
  assert duplicates_in_source == 0
  assert not any(image.tobytes() in seen for image in cut.validation_images)
  np.testing.assert_array_equal(cut.validation_images, digits.train_images[-200:])
  assert held.split_validation(200) is held  # carving again is a no-op
  with pytest.raises(ValueError, match='already holds a validation split of 200, not 100'):
    held.split_validation(100)
  with pytest.raises(ValueError, match='the other 200 are the validation split'):
    held.subset(digits.num_train - 199)
  with pytest.raises(ValueError, match='validation_size must lie in'):
    digits.split_validation(digits.num_train)


def test_quasi_random_draws_are_reproducible_and_inside_the_space():
  trials = search.draw(SPACE, 8, seed=0)
  assert trials == search.draw(SPACE, 8, seed=0)
  assert trials != search.draw(SPACE, 8, seed=1)
  assert search.draw(SPACE, 3, seed=0) == trials[:3]  # a prefix of a longer search
  assert all(search.inside(SPACE, t) and t['weight_decay'] == 5e-4 for t in trials)
  # Spread over the box: each half of each (unit) axis holds some of the 8 trials.
  lrs = np.log10([t['learning_rate'] for t in trials])
  assert (
    0 < np.sum(lrs < -1.5) < 8 and 0 < np.sum(np.array([t['partial'] for t in trials]) < 0.25) < 8
  )
  assert search.on_edge(SPACE, {'learning_rate': 1e-3, 'partial': 0.25}) == ['learning_rate']
  with pytest.raises(ValueError, match='log scale needs low > 0'):
    search.Dimension('learning_rate', 0.0, 1.0)


def test_selection_reads_validation_never_test():
  records = [{'epoch': e, 'validation_error': 0.1 * e, 'test_error': 0.0} for e in range(1, 7)]
  assert selection.validation_score(records, share=1 / 6) == pytest.approx(40.0)
  without = [{k: v for k, v in r.items() if k != 'validation_error'} for r in records]
  with pytest.raises(ValueError, match='validation_error'):
    selection.validation_score(without)


def test_expected_best_of_k_from_the_trials():
  scores = [70.0, 90.0, 80.0, float('nan')]
  assert selection.best(scores) == 1
  assert selection.expected_best_of_k(scores, 4) == 90.0
  assert selection.expected_best_of_k(scores, 1) == -math.inf  # a diverged trial may be drawn
  finite = [70.0, 90.0, 80.0]
  assert selection.expected_best_of_k(finite, 1) == pytest.approx(80.0)
  # Sets of 2 of 3: {70, 90}, {70, 80}, {90, 80} -> (90 + 80 + 90) / 3.
  assert selection.expected_best_of_k(finite, 2) == pytest.approx(260 / 3)


def test_the_docs_show_the_study_as_fixed_in_code():
  page = (pathlib.Path(__file__).parent.parent / 'docs' / 'tuning.md').read_text()
  block = pages.block(page, 'study', 'docs/tuning.md')
  assert block == studies.markdown_table(studies.STUDIES['wrn16_4_paper']).strip()
