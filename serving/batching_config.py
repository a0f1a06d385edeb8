"""batching.config, TF Serving's BatchingParameters text proto: written by `kexport bundle
--batching` (`BatchingSettings`) and read by a server (`BatchingConfig`), both through a private
wire-compatible copy of the message, and which settings a server runs with. The two classes
differ on purpose: a bundle writes defaults chosen for small CPU models, while a file's unset
fields take the defaults of TF Serving's batch scheduler. The scheduler is serving/batching.py.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from exporter.errors import BadInputError
from serving.bundle_manifest import read_manifest
from serving.protos import server_config_pb2

log = logging.getLogger("kexport.serving")


@dataclass
class BatchingSettings:
    """BatchingParameters for TF Serving's --enable_batching (defaults suit small CPU models)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4

    def render(self) -> str:
        """batching.config: a text-format tensorflow.serving.BatchingParameters, printed from
        the project's wire-compatible copy of the message (same field names as TF Serving's)."""
        from google.protobuf import text_format

        params = server_config_pb2.BatchingParameters()
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                     "num_batch_threads"):
            getattr(params, name).value = getattr(self, name)  # Int64Value wrappers
        return text_format.MessageToString(params)


@dataclass(frozen=True)
class BatchingConfig:
    """BatchingParameters with TF Serving's scheduler defaults for unset fields.

    Attributes:
        max_batch_size: examples per merged run.
        batch_timeout_micros: how long the oldest call may wait for others to join.
        max_enqueued_batches: queued work beyond which calls are refused (UNAVAILABLE).
        num_batch_threads: merged runs in flight at once.
        allowed_batch_sizes: batch sizes a run is padded up to (ascending, ending at
            max_batch_size); empty runs any size.
        pad_variable_length_inputs: pad inputs whose trailing dimensions differ (with zeros).
        large_batch_splitting: calls larger than max_batch_size run on their own instead of
            being refused (enable_large_batch_splitting).
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    large_batch_splitting: bool = False


def config_from_parameters(params, source: str = "batching parameters") -> BatchingConfig:
    """A BatchingConfig from a BatchingParameters message, checked as TF Serving does.

    Raises:
        BadInputError: inconsistent values.
    """
    defaults = BatchingConfig()
    values = {name: getattr(params, name).value if params.HasField(name) else getattr(defaults, name)
              for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                           "num_batch_threads")}
    config = BatchingConfig(**values, allowed_batch_sizes=tuple(params.allowed_batch_sizes),
                            pad_variable_length_inputs=params.pad_variable_length_inputs,
                            large_batch_splitting=params.enable_large_batch_splitting.value)
    _check(config, source)
    return config


def parse_batching_config(text: str, source: str = "batching parameters") -> BatchingConfig:
    """Parse a text-format BatchingParameters (see `config_from_parameters`).

    Raises:
        BadInputError: unparsable text or inconsistent values.
    """
    from google.protobuf import text_format

    params = server_config_pb2.BatchingParameters()
    try:
        text_format.Parse(text, params)
    except text_format.ParseError as err:
        raise BadInputError(f"Error parsing text-format tensorflow.serving.BatchingParameters "
                            f"{source}: {err}") from None
    return config_from_parameters(params, source)


def read_batching_config(path: str | Path) -> BatchingConfig:
    """Read a `--batching_parameters_file` (e.g. a bundle's batching.config)."""
    from serving.options import read_text_proto

    params = read_text_proto(path, server_config_pb2.BatchingParameters(),
                             "--batching_parameters_file")
    return config_from_parameters(params, str(path))


def batching_config(option, served: str | Path | None = None) -> BatchingConfig | None:
    """The batching a server runs with.

    Args:
        option: `serving.options.BatchingOptions` (--enable_batching and its parameters file),
            a BatchingConfig, a BatchingParameters file path, True for the defaults, False for
            none, or None.
        served: what the server serves. A bundle written by `kexport bundle --batching` runs its
            container with --enable_batching and its batching.config, so serving it locally
            batches the same way unless batching was asked for explicitly.
    """
    if hasattr(option, "enabled"):  # BatchingOptions from the command line
        if option.enabled:
            if option.parameters is None:
                return BatchingConfig()
            return config_from_parameters(option.parameters, str(option.parameters_file))
        option = None
    if option is None and served is not None:
        bundle = Path(served)
        config = bundle / "batching.config"
        if config.is_file() and _bundle_asks_batching(bundle):
            log.info("batching as the bundle asks (%s)", config)
            return read_batching_config(config)
        return None
    if option is True:
        return BatchingConfig()
    if option is None or option is False or isinstance(option, BatchingConfig):
        return option or None
    return read_batching_config(option)


def _bundle_asks_batching(bundle: Path) -> bool:
    try:
        manifest = read_manifest(bundle)
    except (OSError, BadInputError):
        return False
    return isinstance(manifest, dict) and bool(manifest.get("batching"))


def _check(config: BatchingConfig, source: str) -> None:
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if getattr(config, name) < 1:
            raise BadInputError(f"{source}: {name} must be positive, got {getattr(config, name)}.")
    if config.batch_timeout_micros < 0:
        raise BadInputError(f"{source}: batch_timeout_micros must not be negative.")
    sizes = config.allowed_batch_sizes
    if sizes:
        if any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
            raise BadInputError(f"{source}: allowed_batch_sizes entries must be monotonically "
                                f"increasing, got {list(sizes)}.")
        if sizes[-1] != config.max_batch_size and not config.large_batch_splitting:
            raise BadInputError(f"{source}: final entry in allowed_batch_sizes must equal "
                                f"max_batch_size when enable_large_batch_splitting is False "
                                f"({sizes[-1]} != {config.max_batch_size}).")
