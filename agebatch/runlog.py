"""agebatch's own log lines in the Prefect run log, whichever route started the run.

Prefect sends a logger's lines to the API only when that logger was named in
PREFECT_LOGGING_EXTRA_LOGGERS before `import prefect`, and then at the root logger's level
(WARNING): a worker started without the variable would log nothing of ours, and INFO lines
never. `to_run_log()` wraps the flow's body instead: for the run it gives the `agebatch` logger
Prefect's API handler (unless the variable already did) and lets its INFO lines through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

PACKAGE_LOGGER = "agebatch"


class _InARun(logging.Filter):
    """Only records made inside a flow or task run: threads of a thread pool carry no run
    context, and the API handler would warn about each of their lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return bool(
            getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get()
        )


@contextmanager
def to_run_log(level: int = logging.INFO) -> Iterator[None]:
    """Within the block (a flow run), send the package's log lines at `level` and above (more
    when it is already more verbose) to the run's log in Prefect."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger(PACKAGE_LOGGER)
    added = None
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        added = APILogHandler()
        added.addFilter(_InARun())
        logger.addHandler(added)
    before = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
        if added is not None:
            logger.removeHandler(added)
