"""Native libraries' start-up chatter kept off stderr unless verbose.

TensorFlow, CUDA and LiteRT write from C++ straight to file descriptor 2: absl lines logged
before `absl::InitializeLog()` (which TF_CPP_MIN_LOG_LEVEL does not filter), `cuInit` failures
on a machine without a GPU, and LiteRT's "Created TensorFlow Lite XNNPACK delegate" line, which
breaks a progress bar. The calls that print them (importing Keras and probing its devices,
creating a LiteRT interpreter) run inside `filtered_stderr()`: descriptor 2 goes to a file for
the call, and afterwards every line that is not known chatter is written back, so real errors
still show. With `--verbose` (or AGEBATCH_VERBOSE=1 in the environment) nothing is filtered.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

VERBOSE_ENV = "AGEBATCH_VERBOSE"

# Lines that say nothing is wrong on a CPU machine. Everything else is written back.
CHATTER = re.compile(
    rb"^(?:"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} [\d:. ]+\d+ [\w.]+:\d+\] .*"  # absl INFO/WARNING lines (E lines stay) ...
    rb"|E\d{4} [\d:. ]+\d+ cuda_\w+\.cc:\d+\] .*"  # ... except the CUDA ones: no GPU here
    rb"|To enable the following instructions: .* rebuild TensorFlow .*"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb")\r?\n?$"
)

_lock = threading.RLock()  # one redirect of descriptor 2 at a time, whichever thread asks
_keras: ModuleType | None = None


def verbose() -> bool:
    """Whether native chatter is shown: --verbose, or AGEBATCH_VERBOSE=1 in the environment."""
    return os.environ.get(VERBOSE_ENV, "").lower() in {"1", "true", "yes"}


def set_verbose(on: bool) -> None:
    """Show or filter native chatter in this process and the processes it starts."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def drop_chatter(captured: bytes) -> bytes:
    """The captured bytes without the lines that are known chatter."""
    lines = captured.splitlines(keepends=True)
    return b"".join(line for line in lines if not CHATTER.match(line))


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with file descriptor 2 captured; then write back all but known chatter.

    Whatever else the process writes to stderr meanwhile (log lines of other threads) is
    written back too, only later. A no-op when verbose or when descriptor 2 is not open.
    """
    if verbose():
        yield
        return
    with _lock:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with tempfile.TemporaryFile() as capture:
                sys.stderr.flush()
                os.dup2(capture.fileno(), 2)
                try:
                    yield
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    capture.seek(0)
                    kept = drop_chatter(capture.read())
                    if kept:
                        os.write(2, kept)
        finally:
            os.close(saved)


def import_keras() -> ModuleType:
    """Import Keras and let its backend look for a GPU, with their start-up chatter filtered."""
    global _keras
    if _keras is None:
        with filtered_stderr():
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # cuInit, logged once per process
            _keras = keras
    return _keras
