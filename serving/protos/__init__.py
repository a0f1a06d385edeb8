"""TF-free protobuf messages of TF Serving's gRPC API, in the private package `kexport.tfs`.

Field numbers and types match TensorFlow's and TF Serving's protos, so the bytes on the wire are
the same; the full names differ so these classes never clash with TensorFlow's in protobuf's
default descriptor pool when both are loaded in one process. Regenerate with `generate.py`.
"""
