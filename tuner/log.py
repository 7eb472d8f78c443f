"""tuner's messages: one ``logging`` logger, ``tuner``, set up once by the CLI.

Lines read ``tuner: <message>`` on standard error; ``-q`` shows warnings only, ``--verbose``
adds debug lines. Optuna's logger goes through the same handler (warnings only unless
``--verbose``). Used as a library, tuner leaves handlers to the application (Python's last
resort handler shows warnings)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("tuner")


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is emitted (tests capture it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup(*, quiet: bool = False, verbose: bool = False) -> None:
    """One handler on the ``tuner`` logger (idempotent); its level from ``-q`` / ``--verbose``.
    Warnings about what tuner does on purpose are not the user's to read: Optuna's heartbeat
    API is experimental (tuner relies on it and pins Optuna's major version), and tuner runs
    its own trial loop rather than ``Study.optimize``."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*(is|are) (an )?experimental")
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("tuner: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    # Optuna's messages through the same handler, warnings only unless --verbose (its INFO
    # lines, "A new study created ...", are not the user's business)
    import optuna.logging

    optuna.logging.disable_default_handler()
    library = logging.getLogger("optuna")
    if not any(isinstance(h, _Stderr) for h in library.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("tuner: optuna: %(message)s"))
        library.addHandler(handler)
    library.setLevel(logging.DEBUG if verbose else logging.WARNING)
