"""One module per model format, and what every format shares.

- registry.py: each format's name, what it holds, and the module that reads and writes it.
- detection.py: what a path holds, decided from its content (`detect`, `Detected`).
- h5.py, keras_v3.py, savedmodel.py, architecture.py (json and yaml), weights.py, tflite.py:
  one format each, a `load(detected, options)` and `save(model, path, options)` pair.
- model_from_config.py: an architecture config built into a model, a weights file loaded into it.
- failures.py, hdf5check.py, zipcheck.py: library errors made one line; checks of damaged files.

This package's own module imports nothing, so importing any one format runs no other.
"""
