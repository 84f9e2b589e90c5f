"""One training loop for every trainable thing (GANs, translators, style decoders).

The loop (``loop.py``) owns time, devices, precision, distributed sync, checkpoints and logging;
a task (``task.py``) owns its networks, optimisers and one ``step``; batch sources
(``batches.py``) give it dicts of named tensors; ``run.py``'s ``run_task`` turns a task's options
into a run directory (resume check, run files, summary). See docs/architecture.md.
"""
