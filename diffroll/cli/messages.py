"""The messages of the ``diffroll`` command: one line each on stderr, errors that carry an exit
status, and the exit statuses themselves. Imports no torch (``diffroll --help`` answers at once)."""
from __future__ import annotations

import logging
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class CliError(Exception):
    """A failure that ends the command with a one-line message."""


class UsageError(CliError):
    """A bad argument found after parsing: the usage message, exit status 2."""


def _printable(msg: str, stream) -> str:
    """``msg`` as ``stream`` can print it: file names that are not valid in its encoding (e.g.
    non-UTF-8 bytes, which Python keeps as surrogates) as backslash escapes, not a crash."""
    enc = getattr(stream, "encoding", None) or "utf-8"
    return msg.encode(enc, errors="backslashreplace").decode(enc, errors="replace")


def _say(msg: str) -> None:
    print(_printable(msg, sys.stdout), flush=True)


def _error(msg: str) -> None:
    print(_printable(f"diffroll: error: {msg}", sys.stderr), file=sys.stderr, flush=True)


class _StderrLog(logging.Handler):
    """The package's warnings (NaN samples replaced, a stuck note cut) as ``diffroll: warning: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(_printable(f"diffroll: {record.levelname.lower()}: {record.getMessage()}", sys.stderr),
              file=sys.stderr, flush=True)


def _log_to_stderr() -> None:
    logger = logging.getLogger("diffroll")
    if not any(isinstance(h, _StderrLog) for h in logger.handlers):
        handler = _StderrLog(logging.WARNING)
        logger.addHandler(handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as SIGINT is: temporary files removed, one line, exit 143."""
