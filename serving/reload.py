"""Changing the served models while serving: the models.config re-read every poll period
(TF Serving's --model_config_file_poll_wait_seconds) and ModelService/HandleReloadConfigRequest.

Both end in `ModelManager.reload`: models added load, removed ones unload, policies and labels
change; requests in flight finish on the version they resolved.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc

from exporter.errors import BadInputError
from serving.manager import ModelManager
from serving.models_config import models_from_config, read_models_config
from serving.rpc import RpcFailure

log = logging.getLogger("kexport.serving")


class ConfigWatcher:
    """Re-reads a models.config every `seconds` and applies it when it changed.

    A config that fails to parse is logged and skipped: the server keeps serving what it has,
    as TF Serving does.
    """

    def __init__(self, manager: ModelManager, config_path: Path, bundle: Path, seconds: float):
        self.manager = manager
        self.config_path = config_path
        self.bundle = bundle
        self.seconds = seconds
        self._current = list(manager.models.values())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Read the file once; reload when its models differ. Returns whether it reloaded."""
        try:
            models = read_models_config(self.config_path, self.bundle)
        except BadInputError as err:
            log.error("not reloading %s: %s", self.config_path, err)
            return False
        if models == self._current:
            return False
        log.info("%s changed: now serving %s", self.config_path,
                 ", ".join(m.name for m in models))
        self._current = models
        try:
            self.manager.reload(models)
        except RpcFailure as failure:
            log.error("reloading %s: %s", self.config_path, failure.message)
        return True

    def start(self) -> None:
        """Check in a daemon thread every `seconds` (nothing when seconds <= 0)."""
        if self.seconds <= 0 or self._thread is not None:
            return

        def loop():
            while not self._stop.wait(self.seconds):
                try:
                    self.check()
                except Exception:  # keep serving what is loaded; the log says why
                    log.exception("re-reading %s failed", self.config_path)

        self._thread = threading.Thread(target=loop, name="kexport-config-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the polling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def config_reloader(manager: ModelManager, bundle: Path | None):
    """The function HandleReloadConfigRequest applies a posted ModelServerConfig with."""

    def reload_config(config) -> None:
        try:
            models = models_from_config(config, "ReloadConfigRequest", bundle)
        except BadInputError as err:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        manager.reload(models)

    return reload_config
