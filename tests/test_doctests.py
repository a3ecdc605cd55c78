"""The docstring examples of the optimizer's modules run and print what they show."""

import doctest
import importlib
import io

import pytest

# The modules of ``import padam_jax`` (the optimizer alone), and whether they hold examples.
MODULES = {
  'padam_jax': False,
  'padam_jax.alias': True,
  'padam_jax.transform': True,
  'padam_jax.schedules': False,
}


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
  report = io.StringIO()
  for test in doctest.DocTestFinder().find(module, name):
    runner.run(test, out=report.write)
  result = runner.summarize(verbose=False)
  assert result.failed == 0, report.getvalue()
  assert (result.attempted > 0) == MODULES[name], f'{name}: {result.attempted} examples'
