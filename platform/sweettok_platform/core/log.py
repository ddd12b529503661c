"""One way to log: the standard ``logging`` module, under the ``sweettok`` logger.

Every component logs through ``get_logger("train")`` (``"tokenize"``, ``"eval"``, ...), on the driver, in
Ray Train workers and in Serve replicas alike (Ray's own loggers follow the same module). Lines read
``sweettok train: <message>``; progress lines are INFO, problems WARNING (``sweettok train: warning: ...``)
or ERROR. ``SWEETTOK_LOG_LEVEL`` (default ``INFO``) sets the level, e.g. ``WARNING`` to keep only problems.

The handler writes to the process's original stderr: inside a Ray worker ``sys.stderr`` is wrapped by
Ray Train, which tees it (every line twice in the driver's output).
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "sweettok"


class _LineFormat(logging.Formatter):
    """``sweettok.train`` + INFO -> ``sweettok train: message``; other levels name themselves."""

    def format(self, record: logging.LogRecord) -> str:
        who = record.name.replace(".", " ", 1)
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        line = f"{who}: {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _configure() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if not root.handlers:
        handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
        handler.setFormatter(_LineFormat())
        root.addHandler(handler)
        root.setLevel(os.environ.get("SWEETTOK_LOG_LEVEL", "INFO").upper())
        root.propagate = False  # one line per message, whatever the host application configured
    return root


def ray_worker_setup() -> None:
    """Ray ``worker_process_setup_hook`` of the project's jobs (``RAY_RUNTIME_ENV``): keeps worker output to
    the project's lines and real warnings.

    - Ray Train's INFO lines ("Reporting training result ...", the whole metrics dict, every step) and
      DeepSpeed's INFO lines are dropped; their warnings stay.
    - torch.distributed's deprecation warnings about calls DeepSpeed makes are dropped (nothing to act on).
    - ``RAY_ADDRESS`` names this cluster, so Ray Train's placement-group monitor queries its own cluster's
      state API when several clusters run on one machine (otherwise it dies with a traceback).
    """
    import warnings

    try:
        import ray

        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    except Exception:  # a setup hook that raises kills the worker; the address only quiets a monitor
        pass
    for name in ("ray.train", "DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")


# the runtime_env that applies ray_worker_setup to every process of a job
RAY_RUNTIME_ENV = {"worker_process_setup_hook": "sweettok_platform.core.log.ray_worker_setup"}


def get_logger(component: str) -> logging.Logger:
    """The logger of one component (``sweettok.<component>``), configured on first use in each process."""
    _configure()
    return logging.getLogger(f"{ROOT}.{component}")
