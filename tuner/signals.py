"""SIGTERM (``docker stop``, Kubernetes) and SIGINT (Ctrl-C) as a request to stop, held while a
trial is claimed or its end recorded, so a trial is never left half-claimed or half-recorded.

A ``StopRequest`` belongs to one worker; ``handling()`` installs it as the process's handler for
the two signals (the previous handlers come back on exit).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived (a BaseException, so no ``except Exception`` swallows it)."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


class StopRequest:
    """The stop signal a worker received (``pending``), raised as ``Interrupted`` in the main
    thread at once, or at the end of the critical section it arrived in (``held``)."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self._critical = 0  # depth of the sections that must not be cut

    @contextlib.contextmanager
    def handling(self) -> Iterator[StopRequest]:
        def on_signal(signum: int, frame: Any) -> None:
            if self.pending is not None:
                return  # already stopping
            self.pending = signal.Signals(signum).name
            if self._critical == 0:
                raise Interrupted(self.pending)

        self.pending, self._critical = None, 0
        previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def held(self, *, raise_at_end: bool = True) -> Iterator[None]:
        """Hold a stop signal for the section; then raise it, or keep it for ``raise_pending``."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if raise_at_end:
            self.raise_pending()

    def raise_pending(self) -> None:
        if self._critical == 0 and self.pending is not None:
            raise Interrupted(self.pending)
