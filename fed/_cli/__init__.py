"""The ``fed`` command line (``fed run``, ``fed demo``, ``fed check``, ``fed certs``).

Only what a command needs is imported when it runs: ``fed --help`` imports
neither Ray nor the proxies.
"""

from fed._cli.commands import main

__all__ = ["main"]
