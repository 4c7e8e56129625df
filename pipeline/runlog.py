"""The log file of a batch run (``<report>/run.log``): orbitcube's records at INFO and up, secrets redacted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

__all__ = ["log_to"]


class _Forward(logging.Handler):
    """Passes records at or above ``level`` on to the root handlers (what the caller would have seen)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.threshold = level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold:
            logging.getLogger().handle(record)


@contextlib.contextmanager
def log_to(path: Path, logger: str = "orbitcube") -> Iterator[Path]:
    """Log INFO and up of ``logger`` (and its children) to ``path`` (appended) for the duration; the console and
    the caller's handlers keep seeing what they saw before, at their level. Secrets are redacted."""
    from orbitcube.catalog.storage import RedactingFilter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no secret in run.log
    lg = logging.getLogger(logger)
    level, propagate = lg.level, lg.propagate
    forward = _Forward(lg.getEffectiveLevel()) if propagate else None
    lg.addHandler(handler)
    if forward:
        lg.addHandler(forward)
    lg.setLevel(min(logging.INFO, lg.getEffectiveLevel()))
    lg.propagate = False
    try:
        yield path
    finally:
        lg.removeHandler(handler)
        if forward:
            lg.removeHandler(forward)
        lg.setLevel(level)
        lg.propagate = propagate
        handler.close()
