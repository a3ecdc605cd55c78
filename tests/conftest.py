"""Shared pytest setup: two host devices, a compilation cache, quiet TF logging."""

import os
import tempfile

# Must be set before jax initialises its backends (conftest runs first).
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402  pylint: disable=wrong-import-position

# The training tests build the same small programs many times: compile each once.
jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('PADAM_TEST_JAX_CACHE',
                                 os.path.join(tempfile.gettempdir(), 'padam_jax_test_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
