"""``python -m fed``: the ``fed`` command line."""

import sys

from fed._cli import main

if __name__ == "__main__":
    sys.exit(main())
