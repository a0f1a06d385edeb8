"""`--input-shape NAME=D1,D2,...`: the sizes a user gives verification inputs, checked against
the model's inputs before anything runs.

exporter.verify_inputs fills in what is still open (unknown dimensions, the batch) and picks values.
"""

from __future__ import annotations

from exporter.errors import BadInputError, did_you_mean
from exporter.model_types import TensorSpec


def parse_input_shapes(texts: list[str] | None) -> dict[str | None, tuple[int, ...]]:
    """Parse repeated `--input-shape NAME=D1,D2,...` (`D1,D2,...` alone for a lone input)."""
    shapes: dict[str | None, tuple[int, ...]] = {}
    for text in texts or []:
        name, sep, dims = text.rpartition("=") if "=" in text else (None, "", text)
        try:
            shape = tuple(int(part) for part in dims.split(","))
        except ValueError:
            shape = ()
        if (sep and not name) or not shape or any(dim < 1 for dim in shape):
            raise BadInputError(
                f"--input-shape '{text}' is not NAME=D1,D2,... with positive integer sizes, "
                "e.g. image=224,224,3 (the batch dimension may be left out)."
            )
        if name in shapes:
            raise BadInputError(f"--input-shape gives input '{name or 'the lone input'}' twice.")
        shapes[name] = shape
    return shapes


def _given_shape(spec: TensorSpec, given: tuple[int, ...]) -> tuple:
    """The full shape `--input-shape` asks for: with the batch dim, or without it (then open)."""
    if spec.shape is None:
        return given
    if len(given) == len(spec.shape) - 1:
        given = (spec.shape[0],) + given
    if len(given) != len(spec.shape):
        raise BadInputError(
            f"--input-shape for input '{spec.name}' has {len(given)} dimensions; the input has "
            f"{len(spec.shape)} (shape {list(spec.shape)}, batch first, which may be left out)."
        )
    for axis, (known, wanted) in enumerate(zip(spec.shape, given)):
        if known is not None and known != wanted:
            raise BadInputError(
                f"--input-shape for input '{spec.name}' sets dimension {axis} to {wanted}; "
                f"the model fixes it at {known} (shape {list(spec.shape)})."
            )
    return given


def shape_templates(specs: list[TensorSpec], given: dict) -> dict[str, tuple]:
    """Every input's shape with None for what is still open (unknown rank: a batch vector)."""
    names = [spec.name for spec in specs]
    if None in given and len(specs) != 1:
        raise BadInputError(
            f"--input-shape without a name fits a model with one input; this one has "
            f"{len(specs)}: {', '.join(names)}.", hint="Write NAME=D1,D2,... for each.")
    for name in given:
        if name is not None and name not in names:
            raise BadInputError(
                f"--input-shape names input '{name}', which the model does not have "
                f"(inputs: {', '.join(names)}).{did_you_mean(name, names)}")
    templates = {}
    for spec in specs:
        wanted = given.get(spec.name, given.get(None) if len(specs) == 1 else None)
        if wanted is not None:
            templates[spec.name] = _given_shape(spec, wanted)
        else:
            templates[spec.name] = spec.shape if spec.shape is not None else (None,)
    return templates
