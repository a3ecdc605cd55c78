"""The comparisons of JAX with PyTorch: optimizer trajectories (``trajectory``), whole
training steps of a model (``model_trajectory``) and whole runs over seeds (``whole_run``).

Import the submodules explicitly; they need the ``torch`` extra and run the PyTorch twins
of ``padam_jax.reference``.
"""
