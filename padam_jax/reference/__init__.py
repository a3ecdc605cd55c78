"""PyTorch oracles: the authors' Padam and twins of our models (imports torch lazily).

Import the submodules (``padam_jax.reference.optim``, ``.models``, ``.convert``)
explicitly; they need the ``torch`` extra. The library itself never imports them.
"""
