"""kexport: convert, slice, verify and serve trained Keras models.

Importing this package is cheap (no TensorFlow): the heavy modules are imported by the functions
that need them, so `kexport --help` and `inspect` of a config file answer quickly.
"""

__version__ = "0.1.0"
