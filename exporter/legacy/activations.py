"""Activations whose Keras 1/2 definition Keras 3 changed under the same name.

Keras 1 and 2 defined `hard_sigmoid` as clip(0.2 x + 0.5, 0, 1); Keras 3's `hard_sigmoid` is
relu6(x + 3) / 6, a slope of 1/6. A translated model keeps the old function under its own
registered name, so it computes what it was trained to compute; files written from it name
`kexport>keras2_hard_sigmoid` and load where kexport is imported (`exporter.runtime` does).
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kexport", name="keras2_hard_sigmoid")
def keras2_hard_sigmoid(x):
    """Keras 2's hard sigmoid: clip(0.2 * x + 0.5, 0, 1)."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)
