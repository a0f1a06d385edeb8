"""Which model versions are loaded: version policies, polling for new and removed versions, labels,
and the resolution of a request's ModelSpec to a loaded version (TF Serving's ServerCore).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import grpc

from serving.models_config import ServedModel, aspired_versions
from serving.rpc import RpcFailure
from serving.servable import LoadOptions, Servable
from serving.version_folders import list_versions

log = logging.getLogger("kexport.serving")

MAX_LOAD_ATTEMPTS = 5  # TF Serving's default max_num_load_retries


@dataclass
class VersionState:
    """The state of one version, as GetModelStatus reports it.

    Attributes:
        state: START, LOADING, AVAILABLE, UNLOADING or END.
        error_code: a gRPC status code number; 0 unless loading failed.
        error_message: why loading failed.
        attempts: failed load attempts so far.
    """

    state: str
    error_code: int = 0
    error_message: str = ""
    attempts: int = 0


class ModelManager:
    """Loads the versions each model's policy asks for and hands them to requests.

    Args:
        models: the models to serve (see `serving.version_folders.load_repository`).
        warmup: replay warm-up records when a version loads.
        options: how versions are loaded and run (batching, TFLite, ...); `warmup` is ignored
            when given.
        labels_for_unavailable: let reloads label versions that are not available, as TF
            Serving's --allow_version_labels_for_unavailable_models.
    """

    def __init__(self, models: list[ServedModel], *, warmup: bool = True,
                 options: LoadOptions | None = None, labels_for_unavailable: bool = False):
        self.models = {m.name: m for m in models}
        self.options = options or LoadOptions(warmup=warmup)
        self.warmup = self.options.warmup
        self.labels_for_unavailable = labels_for_unavailable
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._loaded: dict[str, dict[int, Servable]] = {name: {} for name in self.models}
        self._states: dict[str, dict[int, VersionState]] = {name: {} for name in self.models}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._warned_empty: set[str] = set()  # say "no versions" once per model, not every poll

    def refresh(self) -> None:
        """Poll every base path once: load newly aspired versions, then unload the others."""
        with self._refresh_lock:
            for model in self.models.values():
                self._refresh_model(model)

    def reload(self, models: list[ServedModel]) -> None:
        """Serve this list of models from now on, as TF Serving's ReloadConfig does.

        New models load, removed ones unload, changed policies and labels apply. Requests in
        flight keep the version they resolved, so none is dropped.

        Raises:
            RpcFailure: FAILED_PRECONDITION when a label points at a version that is not
                available once loading is done (TF Serving's rule); the rest is applied.
        """
        wanted = {model.name: model for model in models}
        with self._refresh_lock:
            retired = []
            with self._lock:
                removed = [name for name in self.models if name not in wanted]
                for name in removed:
                    for version, servable in self._loaded.pop(name, {}).items():
                        self._states[name][version] = VersionState("END")
                        retired.append(servable)
                for name in wanted:
                    self._loaded.setdefault(name, {})
                    self._states.setdefault(name, {})
                self.models = wanted
            for servable in retired:
                servable.close()  # requests already holding it finish: closing drains
            for name in removed:
                log.info("unloaded model %s: no longer in the config", name)
            for model in wanted.values():
                self._refresh_model(model)
        if not self.labels_for_unavailable:
            self._check_labels()

    def _check_labels(self) -> None:
        with self._lock:
            for model in self.models.values():
                for version in sorted(model.labels.values()):
                    if version not in self._loaded.get(model.name, {}):
                        raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, (
                            f"Request to assign label to version {version} of model "
                            f"{model.name}, which is not currently available for inference"))

    def start_polling(self, seconds: float) -> None:
        """Refresh every `seconds` in a daemon thread; 0 or less polls never (the initial load
        only, as TF Serving's --file_system_poll_wait_seconds=0)."""
        if seconds <= 0 or self._poller is not None:
            return

        def loop():
            while not self._stop.wait(seconds):
                try:
                    self.refresh()
                except Exception:  # keep serving what is loaded; the log says why
                    log.exception("polling the model folders failed")

        self._poller = threading.Thread(target=loop, name="kexport-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and drop every loaded version."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
        with self._lock:
            retired = [s for versions in self._loaded.values() for s in versions.values()]
            for name in self._loaded:
                self._loaded[name] = {}
        for servable in retired:
            servable.close()

    def resolve(self, model_spec) -> Servable:
        """The loaded version a ModelSpec asks for (latest, a version, or a label).

        Raises:
            RpcFailure: with TF Serving's codes and messages (INVALID_ARGUMENT, NOT_FOUND).
        """
        name = model_spec.name
        if not name:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        with self._lock:
            loaded = self._loaded.get(name, {})
            if choice is None:
                if not loaded:
                    raise RpcFailure(grpc.StatusCode.NOT_FOUND,
                                     f"Servable not found for request: Latest({name})")
                return loaded[max(loaded)]
        version = model_spec.version.value if choice == "version" else self.label_version(
            name, model_spec.version_label)
        with self._lock:
            servable = self._loaded.get(name, {}).get(version)
        if servable is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND,
                             f"Servable not found for request: Specific({name}, {version})")
        return servable

    def label_version(self, name: str, label: str) -> int:
        """The version a label points to; INVALID_ARGUMENT for unknown labels, as TF Serving."""
        model = self.models.get(name)
        if model is None or label not in model.labels:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Unrecognized servable version label: {label}")
        return model.labels[label]

    def states(self, name: str) -> dict[int, VersionState]:
        """Every version ever seen of a model with its state, newest first."""
        with self._lock:
            states = self._states.get(name, {})
            return {v: VersionState(**vars(states[v])) for v in sorted(states, reverse=True)}

    def available(self) -> dict[str, list[int]]:
        """Model name -> loaded versions, ascending."""
        with self._lock:
            return {name: sorted(versions) for name, versions in self._loaded.items()}

    def _refresh_model(self, model: ServedModel) -> None:
        on_disk = list_versions(model.base_path)
        aspired = aspired_versions(model, on_disk)
        if not on_disk and model.name not in self._warned_empty:
            self._warned_empty.add(model.name)
            log.warning("No versions of servable %s found under base path %s", model.name,
                        model.base_path)
        elif on_disk:
            self._warned_empty.discard(model.name)
        for version in sorted(aspired, reverse=True):
            self._maybe_load(model, version, on_disk[version])
        with self._lock:
            loaded = self._loaded[model.name]
            aspired_loaded = aspired & set(loaded)
            # Keep availability: retire old versions only once an aspired one serves, unless
            # none is aspired at all (every version folder was removed).
            retire = [v for v in loaded if v not in aspired and (aspired_loaded or not aspired)]
            retired = [loaded.pop(version) for version in retire]
            for version in retire:
                self._states[model.name][version] = VersionState("END")
        for servable in retired:
            servable.close()  # requests already holding it finish: closing drains, not drops
            log.info("unloaded model %s version %d", model.name, servable.version)

    def _maybe_load(self, model: ServedModel, version: int, path) -> None:
        with self._lock:
            state = self._states[model.name].get(version)
            if version in self._loaded[model.name]:
                return
            if state is not None and (state.state == "LOADING" or state.attempts >= MAX_LOAD_ATTEMPTS):
                return
            attempts = state.attempts if state else 0
            self._states[model.name][version] = VersionState("LOADING", attempts=attempts)
        log.info("loading model %s version %d from %s", model.name, version, path)
        try:
            servable = Servable.load(model.name, version, path, options=self.options)
        except Exception as err:  # noqa: BLE001 -- a broken version must not stop the others
            message = " ".join(str(err).split())
            log.error("loading model %s version %d failed: %s", model.name, version, message)
            with self._lock:
                self._states[model.name][version] = VersionState(
                    "END", grpc.StatusCode.UNKNOWN.value[0], message, attempts + 1)
            return
        with self._lock:
            self._loaded[model.name][version] = servable
            self._states[model.name][version] = VersionState("AVAILABLE")
        log.info("model %s version %d is available", model.name, version)
