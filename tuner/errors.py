"""The two kinds of error that steer the CLI and the worker loop, and how errors are shown.

- ``InputError``: the user's input is wrong (space, data, settings). One line naming the file, the
  field and the value; the CLI exits 2 and nothing has been written to any store.
- A trial's own error (diverged, out of memory, a runtime config error) is any other exception
  raised by its training: the trial is FAIL with the reason (``outcome.of_error``), the worker
  goes on.
- ``FatalError``: the worker is useless (storage gone after retries, data that does not match the
  study). It stops with the message and exit code 1, leaving nothing RUNNING that it could close.
"""

from __future__ import annotations

import re


class InputError(Exception):
    """Bad input, reported as ``source:line: field: message`` on one line."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.field = field
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.field) if p]
        return ": ".join([*parts, self.message])


class FatalError(Exception):
    """The worker cannot continue."""


def mask(text: str) -> str:
    """``text`` with any password replaced by ``***``: a URL's ``user:pass@``, ``?password=``,
    ``sslpassword=``, a libpq ``password=`` keyword. A password may hold ``/`` or ``:``, so
    everything up to the last ``@`` of the authority goes."""
    text = re.sub(r"(://[^/:@\s]*:)\S*@", r"\1***@", text)
    return re.sub(
        r"(?i)((?:^|[?&\s'\"])(?:ssl)?password=)('[^']*'|\"[^\"]*\"|[^&\s'\"]*)", r"\1***", text
    )


def brief(e: BaseException, limit: int = 300) -> str:
    """An exception as one line for a message: its first line, passwords masked (a driver's
    error can quote the URL it was given), at most ``limit`` characters."""
    lines = str(e).strip().splitlines()
    return mask(lines[0] if lines else type(e).__name__)[:limit]
