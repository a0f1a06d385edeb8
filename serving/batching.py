"""Server-side batching (TF Serving's --enable_batching): concurrent calls to the same signature
are merged along the first axis into one run of up to `max_batch_size` examples, within
`batch_timeout_micros`, and the outputs are split back per caller.

The settings are TF Serving's BatchingParameters text proto (the `batching.config` that
`kexport bundle --batching` writes), parsed with a private copy of the message. Unset fields take
the defaults of TF Serving's batch scheduler.

Where TF Serving fails a whole merged batch, this scheduler keeps callers apart: calls whose
inputs cannot be concatenated (other dtypes or trailing shapes, unless padding is on) go in a
later batch, and a merged run that fails, or whose outputs are not batch-major, is re-run call by
call, so each caller gets its own result or error.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from exporter.errors import BadInputError
from serving.rpc import RpcFailure, invalid

log = logging.getLogger("kexport.serving")


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

    from serving.protos import server_config_pb2

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
    from serving.protos import server_config_pb2

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
    import json

    try:
        return bool(json.loads((bundle / "bundle.json").read_text(encoding="utf-8")).get("batching"))
    except (OSError, ValueError, AttributeError):
        return False


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


@dataclass(eq=False)
class _Call:
    """One caller's run waiting to be merged."""

    feeds: dict
    size: int
    enqueued: float
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict | None = None
    error: BaseException | None = None

    def finish(self, outputs=None, error=None) -> None:
        self.outputs, self.error = outputs, error
        self.done.set()


class BatchingRunner:
    """Wraps a runner (see `serving.runners`) so that concurrent `run` calls share runs.

    Args:
        inner: the runner that computes merged batches.
        config: the batching settings.
    """

    def __init__(self, inner, config: BatchingConfig):
        self.inner = inner
        self.config = config
        self.kind = f"{inner.kind}, batched"
        self.calls = 0  # calls answered, and runs of the inner runner that answered them
        self.runs = 0
        self._queues: dict[tuple, deque[_Call]] = {}
        self._queued = 0
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"kexport-batch-{i}", daemon=True)
                         for i in range(config.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def has_signature(self, name: str) -> bool:
        return self.inner.has_signature(name)

    def run(self, signature: str, feeds: dict[str, np.ndarray], fetch: list[str]) -> dict:
        """Queue a call, wait for the merged run that includes it, return its own outputs.

        Raises:
            RpcFailure: the call's inputs cannot be batched (INVALID_ARGUMENT), the queue is full
                (UNAVAILABLE), or its run failed.
        """
        size = _batch_size(feeds)
        if size > self.config.max_batch_size and self.config.large_batch_splitting:
            return self.inner.run(signature, feeds, fetch)  # too large to share a run
        if size > self.config.max_batch_size:
            raise invalid(f"Task size {size} is larger than maximum input batch size "
                          f"{self.config.max_batch_size}")
        call = _Call(feeds, size, time.monotonic())
        key = (signature, tuple(sorted(feeds)), tuple(fetch))
        with self._cond:
            if self._closed:
                call = None
            else:
                limit = self.config.max_enqueued_batches * self.config.max_batch_size
                if self._queued + size > limit:
                    raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to "
                                     "which this task was submitted is full")
                self._queues.setdefault(key, deque()).append(call)
                self._queued += size
                self._cond.notify_all()
        if call is None:  # unloaded while this request was on its way: run it alone
            return self.inner.run(signature, feeds, fetch)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.outputs

    def close(self) -> None:
        """Run what is queued, then stop the batch threads; later calls run unbatched."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                while batch is None:
                    if self._closed and not self._queued:
                        return
                    self._cond.wait(self._wait_seconds())
                    batch = self._next_batch()
            self._run_batch(*batch)

    def _next_batch(self):
        """Under the lock: the calls of the queue whose batch is full or whose oldest call has
        waited out the timeout (the oldest such queue first), or None."""
        now = time.monotonic()
        timeout = self.config.batch_timeout_micros / 1e6
        ready = [(q[0].enqueued, key) for key, q in self._queues.items()
                 if q and (self._closed or now - q[0].enqueued >= timeout
                           or sum(c.size for c in q) >= self.config.max_batch_size)]
        if not ready:
            return None
        key = min(ready)[1]
        queue = self._queues[key]
        calls, total, later = [], 0, deque()
        while queue:
            call = queue.popleft()
            fits = total + call.size <= self.config.max_batch_size
            if fits and (not calls or self._compatible(calls[0], call)):
                calls.append(call)
                total += call.size
            else:
                later.append(call)
        queue.extend(later)
        self._queued -= total
        return key, calls

    def _wait_seconds(self) -> float | None:
        oldest = [q[0].enqueued for q in self._queues.values() if q]
        if not oldest:
            return None
        remaining = min(oldest) + self.config.batch_timeout_micros / 1e6 - time.monotonic()
        return max(remaining, 0.0005)

    def _compatible(self, first: _Call, other: _Call) -> bool:
        for alias, arr in first.feeds.items():
            peer = other.feeds[alias]
            if arr.dtype != peer.dtype or arr.ndim != peer.ndim:
                return False
            if arr.shape[1:] != peer.shape[1:] and not self.config.pad_variable_length_inputs:
                return False
        return True

    def _run_batch(self, key: tuple, calls: list[_Call]) -> None:
        signature, _, fetch = key
        fetch = list(fetch)
        if len(calls) == 1:
            self._run_alone(signature, fetch, calls[0])
            return
        total = sum(call.size for call in calls)
        padded = _padded_size(total, self.config.allowed_batch_sizes)
        try:
            merged = {alias: _merge([c.feeds[alias] for c in calls], padded)
                      for alias in calls[0].feeds}
            outputs = self.inner.run(signature, merged, fetch)
            if any(out.ndim == 0 or out.shape[0] != padded for out in outputs.values()):
                raise ValueError("outputs are not batch-major")
        except (RpcFailure, ValueError) as err:
            # One caller's bad input must not fail the others: run each call on its own.
            log.debug("merged run of %d calls to %s failed (%s); running them one by one",
                      len(calls), signature, err)
            for call in calls:
                self._run_alone(signature, fetch, call)
            return
        self._count(len(calls), 1)
        start = 0
        for call in calls:
            call.finish({alias: out[start:start + call.size] for alias, out in outputs.items()})
            start += call.size

    def _count(self, calls: int, runs: int) -> None:
        with self._cond:
            self.calls += calls
            self.runs += runs

    def _run_alone(self, signature: str, fetch: list[str], call: _Call) -> None:
        self._count(1, 1)
        try:
            call.finish(self.inner.run(signature, call.feeds, fetch))
        except BaseException as err:  # noqa: BLE001 -- handed to the waiting caller
            call.finish(error=err)


def _batch_size(feeds: dict[str, np.ndarray]) -> int:
    """The shared first dimension of a call's inputs, as BatchingSession demands it."""
    if not feeds:
        raise invalid("Batching Run() must have at least one input tensor")
    sizes = set()
    for arr in feeds.values():
        if arr.ndim == 0:
            raise invalid("Batching session Run() input tensors must have at least one dimension")
        sizes.add(arr.shape[0])
    if len(sizes) != 1:
        raise invalid("Batching session Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def _padded_size(total: int, allowed: tuple[int, ...]) -> int:
    return next((size for size in allowed if size >= total), total)


def _merge(parts: list[np.ndarray], padded: int) -> np.ndarray:
    """Concatenate along axis 0, zero-padding trailing dimensions to the largest and the batch to
    `padded` rows (copies of the first row, which every model can compute)."""
    widest = tuple(max(dims) for dims in zip(*(p.shape[1:] for p in parts)))
    if any(p.shape[1:] != widest for p in parts):
        parts = [np.pad(p, [(0, 0)] + [(0, w - d) for w, d in zip(widest, p.shape[1:])])
                 for p in parts]
    merged = np.concatenate(parts)
    if padded > merged.shape[0]:
        merged = np.concatenate([merged, np.repeat(merged[:1], padded - merged.shape[0], axis=0)])
    return merged
