"""Shared pytest setup: two host devices for sharding tests, quiet TF logging."""

import os

# Must be set before jax initialises its backends (conftest runs first).
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
