"""One training loop for every trainable thing (GANs, translators, style decoders).

The loop (``loop.py``) owns time, devices, precision, distributed sync, checkpoints and logging;
a task (``task.py``) owns its networks, optimisers and one ``step``.
"""
