"""silofed's logger: ``[party][job]`` on every line, the user's root handlers untouched."""

from __future__ import annotations

import logging

_HANDLER_NAME = "silofed"


def configure_logging(party: str, job: str, level: str | int = "INFO") -> logging.Logger:
    """Set up the ``silofed`` logger for this party and job; returns it."""
    logger = logging.getLogger("silofed")
    for h in list(logger.handlers):
        if h.get_name() == _HANDLER_NAME:
            logger.removeHandler(h)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s [{party}][{job}] %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    logger.propagate = False
    return logger
