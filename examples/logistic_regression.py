"""Federated logistic regression (FedAvg) across the parties of a config.

Each party trains on its own private synthetic data; only model updates cross
the silo boundary, an aggregator averages them, and every party prints the
training loss per round and the final held-out accuracy. Run all three parties
on this machine with::

    fed run --config configs/local-3party.yaml examples/logistic_regression.py

or one party per machine with ``fed run --party alice --config ... examples/logistic_regression.py``.

The program itself lives in the package, ``fed/_cli/demo.py``, so that ``fed demo``
works after ``pip install`` without this directory; read it there.
"""

import sys

from fed._cli.demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
