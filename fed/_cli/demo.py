"""Federated logistic regression with FedAvg: the program behind ``fed demo``.

Every party of the job (alice, bob and carol in the demo) holds its own private
samples of the same prediction task; their feature distributions differ, so
no party alone sees the whole picture. Each round:

1. every party's ``LocalTrainer`` actor takes the current global model and runs
   a few gradient steps on its private data; only the updated weights leave
   the party, never the samples;
2. ``federated_average`` at the aggregator (the first party) averages the
   updates weighted by sample count, and ``fed.get`` hands the new global model
   and its training loss to every party.

At the end every party scores the final model on its own held-out samples and
the aggregator combines the counts into one accuracy.

It is shipped inside the package so that ``fed demo`` works after
``pip install``; ``examples/logistic_regression.py`` runs it. Run it with::

    fed run --config configs/local-3party.yaml examples/logistic_regression.py
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence, cast

import numpy as np

import fed

N_FEATURES = 8
RAY_INIT_KWARGS = {"num_cpus": 2, "object_store_memory": 200 * 1024 * 1024, "include_dashboard": False}


def make_data(party_index: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The private samples of one party: features ``(n, 8)`` and 0/1 labels.

    All parties share the true model (drawn from ``seed``); each party's features
    come from its own distribution (shifted by its index), so the data is not
    identically distributed across parties.
    """
    truth = np.random.default_rng(seed)
    w_true = truth.normal(size=N_FEATURES)
    b_true = 0.3
    rng = np.random.default_rng(seed + 1000 * (party_index + 1))
    x = rng.normal(loc=0.4 * party_index, scale=1.0 + 0.2 * party_index, size=(n, N_FEATURES))
    p = 1.0 / (1.0 + np.exp(-(x @ w_true + b_true)))
    y = (rng.random(n) < p).astype(np.float64)
    return x, y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    eps = 1e-12
    return float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))


@fed.remote
class LocalTrainer:
    """Holds one party's private data; trains and evaluates models on it locally."""

    def __init__(self, party_index: int, samples: int, seed: int, lr: float, local_steps: int):
        x, y = make_data(party_index, samples, seed)
        split = int(0.8 * samples)
        self.x, self.y = x[:split], y[:split]
        self.x_test, self.y_test = x[split:], y[split:]
        self.lr, self.local_steps = lr, local_steps

    def train(self, model: dict) -> dict:
        """A few local gradient steps from the global ``model``; returns the update and the model's loss."""
        w, b = np.array(model["w"], dtype=np.float64), float(model["b"])
        loss = _log_loss(_sigmoid(self.x @ w + b), self.y)
        for _ in range(self.local_steps):
            err = _sigmoid(self.x @ w + b) - self.y
            w -= self.lr * (self.x.T @ err) / len(self.y)
            b -= self.lr * float(err.mean())
        return {"w": w, "b": b, "n": len(self.y), "loss": loss}

    def evaluate(self, model: dict) -> dict:
        """Correct predictions of ``model`` on this party's held-out samples."""
        pred = _sigmoid(self.x_test @ model["w"] + model["b"]) > 0.5
        return {"correct": int((pred == (self.y_test > 0.5)).sum()), "n": len(self.y_test)}


@fed.remote
def federated_average(*updates: dict) -> dict:
    """FedAvg: the sample-weighted mean of the parties' updates (and of their losses)."""
    n = sum(u["n"] for u in updates)
    return {
        "w": sum(u["w"] * u["n"] for u in updates) / n,
        "b": sum(u["b"] * u["n"] for u in updates) / n,
        "loss": sum(u["loss"] * u["n"] for u in updates) / n,
    }


@fed.remote
def pooled_accuracy(*evals: dict) -> dict:
    """Accuracy over every party's held-out samples together."""
    correct, n = sum(e["correct"] for e in evals), sum(e["n"] for e in evals)
    return {"accuracy": correct / n, "n": n}


def job_parties() -> list[str]:
    """The parties of the job this process joined, in config order."""
    from fed._runtime import current_job

    return list(current_job().config.addresses)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the federated training as this party (``$FED_PARTY`` of ``$FED_CONFIG``)."""
    parser = argparse.ArgumentParser(description="Federated logistic regression (FedAvg).")
    parser.add_argument("--rounds", type=int, default=8, help="training rounds (default 8)")
    parser.add_argument("--local-steps", type=int, default=5, help="gradient steps per party per round")
    parser.add_argument("--lr", type=float, default=0.3, help="learning rate")
    parser.add_argument("--samples", type=int, default=2000, help="samples per party")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    args = parser.parse_args(argv)

    fed.init(ray_init_kwargs=RAY_INIT_KWARGS)  # party and config from $FED_PARTY / $FED_CONFIG
    try:
        parties = job_parties()
        aggregator = parties[0]
        # @fed.remote turned the class into a FedRemoteClass; mypy does not apply class decorators
        trainer_class = cast(fed.FedRemoteClass, LocalTrainer)
        trainers = [trainer_class.party(p).remote(i, args.samples, args.seed, args.lr, args.local_steps)
                    for i, p in enumerate(parties)]
        model: object = {"w": np.zeros(N_FEATURES), "b": 0.0}
        print(f"training on {len(parties)} parties {parties}, aggregator {aggregator}, "
              f"{args.samples} private samples each", flush=True)
        start = time.monotonic()
        for r in range(1, args.rounds + 1):
            updates = [t.train.remote(model) for t in trainers]
            averaged = federated_average.party(aggregator).remote(*updates)
            loss = fed.get(averaged)["loss"]
            model = averaged
            print(f"round {r:2d}  loss {loss:.4f}", flush=True)
        evals = [t.evaluate.remote(model) for t in trainers]
        result = fed.get(pooled_accuracy.party(aggregator).remote(*evals))
        print(f"final accuracy {result['accuracy']:.3f} on {result['n']} held-out samples "
              f"({time.monotonic() - start:.1f} s)", flush=True)
    finally:
        fed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
