"""Everything a server process owns, built from the typed config, with start/stop; and ``serve``.

Background work (none of it on the request path): the alias follower (``poll_interval_s``), the
store watcher that drops the item cache after a re-materialization (``store_check_interval_s``),
and the prediction log writer. ``serving.app`` builds the HTTP face on a runtime (and ``serve``
runs it); this module never imports the app, so the two do not import each other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from serving.auth import bearer_token
from serving.features import OnlineFeatures, feast_features
from serving.models import AliasFollower, ModelHolder
from serving.predlog import PredictionLog, prediction_log
from serving.service import PredictionService

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        config,
        data_root: str,
        artifact_root: str,
        *,
        features: OnlineFeatures | None = None,
        model_name: str | None = None,
        env: Mapping[str, str] | None = None,
    ):
        s = config.serving
        self.token = bearer_token(config, env)  # before anything starts: a missing token stops here
        self.config = config
        self.data_root = data_root
        self.artifact_root = artifact_root
        self.model_name = model_name or config.pipeline.model_name
        self.holder = ModelHolder()
        self.follower = AliasFollower(
            self.holder, artifact_root, self.model_name, s.poll_interval_s, s.model_cache_dir or None
        )
        self.features = features or feast_features(config, data_root)
        self.log: PredictionLog | None = prediction_log(config, artifact_root) if s.log_enabled else None
        self.service = PredictionService(self.holder, self.features, self.log)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        """Readiness: the service's state, the alias follower's and the prediction log's counters."""
        return {
            **self.service.status(),
            "alias": self.follower.status(),
            "prediction_log": self.log.stats() if self.log is not None else None,
        }

    def start(self) -> None:
        if self.config.serving.torch_threads:
            import torch

            torch.set_num_threads(self.config.serving.torch_threads)
        if self.log is not None:
            self.log.start()
        self.features.refresh()
        self.follower.start()
        self._watcher = threading.Thread(target=self._watch_store, name="taml-store-watcher", daemon=True)
        self._watcher.start()

    def _watch_store(self) -> None:
        while not self._stop.wait(self.config.serving.store_check_interval_s):
            try:
                self.features.refresh()
            except Exception:  # keep watching: the next round may succeed
                log.exception("feature store check failed")

    def stop(self) -> None:
        self._stop.set()
        self.follower.stop()
        if self._watcher is not None:
            self._watcher.join(5)
        if self.log is not None:
            self.log.close()


def resolve_port(config, cli_port: int | None, env: Mapping[str, str] | None = None) -> int:
    """``--port``, else Vertex AI's ``AIP_HTTP_PORT``, else ``serving.port``."""
    env = os.environ if env is None else env
    if cli_port is not None:
        return cli_port
    if env.get("AIP_HTTP_PORT"):
        return int(env["AIP_HTTP_PORT"])
    return config.serving.port


def uvicorn_options(config, host: str | None, port: int) -> dict[str, Any]:
    """uvicorn's limits from ``serving.*`` (connections, idle keep-alive, shutdown drain)."""
    s = config.serving
    return {
        "host": host or s.host,
        "port": port,
        "limit_concurrency": s.limit_concurrency,
        "backlog": s.backlog,
        "timeout_keep_alive": s.timeout_keep_alive_s,
        "timeout_graceful_shutdown": s.timeout_graceful_shutdown_s,
        "h11_max_incomplete_event_size": s.max_header_bytes,
        "log_level": "warning",
        "access_log": False,
    }
