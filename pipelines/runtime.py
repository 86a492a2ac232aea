"""What every component shell shares: the one configuration parameter, logging, the date; local copies.

The CLI resolves the configuration once (profile, files, environment, ``--set``) and hands it to
the pipeline as ONE string parameter, ``config``. Each task validates it with the same pydantic
schema and applies no layer of its own (not even its environment's ``TAML__`` variables), so a
value means the same in every task, on a laptop and on a cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from taml.core import layout, storage
from taml.core.config import Config, ConfigError, validate


def config_parameter(config: Config) -> str:
    """The resolved configuration as the pipeline's ``config`` parameter (JSON, keys in schema order)."""
    return json.dumps(config.model_dump(mode="json"))


def read_config_parameter(text: str) -> Config:
    """The configuration a task was given: JSON, or YAML such as ``taml config show`` prints."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"pipeline parameter 'config' is neither JSON nor YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"pipeline parameter 'config' must be a mapping of sections, got {type(data).__name__}"
        )
    return validate(data)


@dataclass(frozen=True)
class StepContext:
    """What every step shell starts from: the validated configuration and the impression day D."""

    config: Config
    day: dt.date

    @property
    def data_root(self) -> str:
        return self.config.paths.data_root

    @property
    def artifact_root(self) -> str:
        return self.config.paths.artifact_root


def step_context(config: str, date: str) -> StepContext:
    """The shared start of the step shells: logging, the ``config`` parameter validated, the date."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if _in_kfp_task():
        atexit.register(_leave_without_teardown, time.time())
    return StepContext(read_config_parameter(config), layout.parse_date(date))


#: The module KFP runs every task process as (``python3 -m kfp.dsl.executor_main``).
KFP_EXECUTOR = "kfp.dsl.executor_main"


def _in_kfp_task() -> bool:
    main = sys.modules.get("__main__")
    return getattr(getattr(main, "__spec__", None), "name", None) == KFP_EXECUTOR


#: Slack for a file system's coarse modification times against ``time.time()``.
MTIME_MARGIN_S = 1.0


def _executor_output_written(since: float) -> bool:
    """Whether KFP's executor wrote this task's output file after ``since`` (its last act on success)."""
    try:
        executor_input = json.loads(sys.argv[sys.argv.index("--executor_input") + 1])
        path = executor_input["outputs"]["outputFile"]
        # A file system's clock ticks coarser than time.time(); a stale file from an earlier
        # attempt of the task predates this process by far more than the margin.
        return os.path.getmtime(path) >= since - MTIME_MARGIN_S
    except (ValueError, IndexError, KeyError, TypeError, OSError):
        return False


def _leave_without_teardown(started: float) -> None:
    """End a task process that succeeded without the interpreter's module teardown.

    A step's process holds torch, pandas, pyarrow, Feast, Great Expectations or Evidently, and
    tearing those modules down cost more than some steps' work (measured under load: 21 s
    against 0.6 s for a process that imported them). Only a task that provably succeeded is cut
    short: no uncaught exception (``sys.last_value``) and the executor's output file written
    during this process, which KFP does after the step returned and its outputs were recorded.
    A ``SystemExit`` or a failure anywhere leaves the file unwritten, so that process exits the
    normal way with its own status. Every step has closed what it wrote (``with`` blocks) and
    the non-daemon threads have been joined by now; logging and the standard streams are flushed
    here. Registered only inside a KFP task process, never in a test run or the CLI.
    """
    if getattr(sys, "last_value", None) is not None or not _executor_output_written(started):
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path for ``uri``: itself on disk, a temporary download for gs://."""
    if not storage.is_gcs(uri):
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="taml-copy-") as tmp:
        path = os.path.join(tmp, storage.basename(uri))
        storage.copy(uri, path)
        yield path
