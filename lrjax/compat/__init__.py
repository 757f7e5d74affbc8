"""Drop-in equivalents of other libraries' learning-rate schedulers, built from lrjax's families.

Import the flavour you are porting from; ``import lrjax`` does not import this package, and
none of its modules imports torch, transformers, keras or timm::

    from lrjax.compat import torch as lrt            # StepLR, OneCycleLR, ReduceLROnPlateau, ...
    from lrjax.compat import transformers as lrhf    # get_scheduler(name, learning_rate, ...)
    from lrjax.compat import keras as lrk            # ExponentialDecay, CosineDecayRestarts, ...
    from lrjax.compat import timm as lrtimm          # CosineLRScheduler, ... (by update count)
    from lrjax.compat import optax as lro            # warmup_cosine_decay_schedule(...), ... (optax's functions)

Each constructor takes the original's argument names and defaults (PyTorch and timm: the
optimizer replaced by ``lr``, its base rate) and returns a native lrjax schedule, whose value
at step ``t`` is the original's learning rate after ``t`` scheduler steps;
``lrjax.to_spec(s)`` shows the native equivalent. See docs/compat.md for the table of
equivalents and the documented differences.
"""
