"""The PyTorch twins: the authors' Padam and the twin of each of our optimizers, twins of
our models, weight conversion, and a PyTorch training loop.

Import the submodules (``padam_jax.reference.optim``, ``.twins``, ``.models``,
``.convert``, ``.training``) explicitly; they need the ``torch`` extra. The library itself
never imports them, and they import nothing of the comparisons
(``padam_jax.crosscheck``), the sweeps or the reproduction.
"""
