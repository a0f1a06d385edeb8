"""Server-side batching (TF Serving's --enable_batching): concurrent calls to the same signature
are merged along the first axis into one run of up to `max_batch_size` examples, within
`batch_timeout_micros`, and the outputs are split back per caller.

The settings (`BatchingConfig`, read from TF Serving's BatchingParameters) are in
serving/batching_config.py.

Where TF Serving fails a whole merged batch, this scheduler keeps callers apart: calls whose
inputs cannot be concatenated (other dtypes or trailing shapes, unless padding is on) go in a
later batch, and a merged run that fails, or whose outputs are not batch-major, is re-run call by
call, so each caller gets its own result or error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import grpc
import numpy as np

from serving.batching_config import BatchingConfig
from serving.rpc import RpcFailure, invalid

log = logging.getLogger("kexport.serving")


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
