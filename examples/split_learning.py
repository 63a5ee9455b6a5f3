"""Split (vertical) learning: two parties hold different columns of the same rows.

alice holds 4 feature columns and the labels; bob holds 4 other feature columns
of the same customers (rows already aligned, e.g. by private set intersection).
Together they train one logistic regression ``sigmoid(x_a @ w_a + x_b @ w_b + b)``
without either side revealing its features or weights:

* bob's ``BottomModel`` sends only its partial logits ``x_b @ w_b`` to alice;
* alice's ``TopModel`` adds her own part, computes the loss against her labels,
  updates ``w_a`` and sends back only the gradient with respect to bob's logits;
* bob updates ``w_b`` with that gradient.

Run both parties on this machine with::

    fed run --config configs/local-2party.yaml examples/split_learning.py
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fed

RAY_INIT_KWARGS = {"num_cpus": 2, "object_store_memory": 200 * 1024 * 1024, "include_dashboard": False}
N_SAMPLES, N_TEST = 4000, 1000


def joint_columns(seed: int, columns: slice) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic stand-in for the joined dataset: ``columns`` of the features, and the labels.

    Both parties derive their own columns from the same seed so that the rows
    line up; in a real deployment each would load its own table.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, 8))
    w_true = rng.normal(size=8) * 1.5
    y = (rng.random(N_SAMPLES) < 1 / (1 + np.exp(-(x @ w_true)))).astype(np.float64)
    return x[:, columns], y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@fed.remote
class BottomModel:
    """bob's half: his feature columns and weights. Never ships either."""

    def __init__(self, seed: int, lr: float):
        x, _ = joint_columns(seed, slice(4, 8))  # bob's columns; labels are not his
        self.x, self.x_test = x[:-N_TEST], x[-N_TEST:]
        self.w = np.zeros(x.shape[1])
        self.lr = lr

    def forward(self, test: bool = False) -> np.ndarray:
        """Partial logits of every training (or test) row."""
        return (self.x_test if test else self.x) @ self.w

    def backward(self, grad_logits: np.ndarray) -> float:
        """Update the weights from the gradient of the loss w.r.t. this model's logits."""
        grad = self.x.T @ grad_logits
        self.w -= self.lr * grad
        return float(np.linalg.norm(grad))


@fed.remote
class TopModel:
    """alice's half: her feature columns, the labels, her weights and the bias."""

    def __init__(self, seed: int, lr: float):
        x, y = joint_columns(seed, slice(0, 4))
        self.x, self.y = x[:-N_TEST], y[:-N_TEST]
        self.x_test, self.y_test = x[-N_TEST:], y[-N_TEST:]
        self.w, self.b = np.zeros(x.shape[1]), 0.0
        self.lr = lr

    def step(self, bob_logits: np.ndarray) -> tuple[np.ndarray, float]:
        """One training step; returns (gradient for bob's logits, loss before the step)."""
        p = _sigmoid(self.x @ self.w + self.b + bob_logits)
        loss = float(-np.mean(self.y * np.log(p + 1e-12) + (1 - self.y) * np.log(1 - p + 1e-12)))
        grad_logits = (p - self.y) / len(self.y)
        self.w -= self.lr * (self.x.T @ grad_logits)
        self.b -= self.lr * float(grad_logits.sum())
        return grad_logits, loss

    def accuracy(self, bob_test_logits: np.ndarray) -> float:
        """Accuracy of the joint model on the held-out rows."""
        p = _sigmoid(self.x_test @ self.w + self.b + bob_test_logits)
        return float(((p > 0.5) == (self.y_test > 0.5)).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    fed.init(ray_init_kwargs=RAY_INIT_KWARGS)  # party and config from $FED_PARTY / $FED_CONFIG
    try:
        top = TopModel.party("alice").remote(args.seed, args.lr)
        bottom = BottomModel.party("bob").remote(args.seed, args.lr)
        for r in range(1, args.rounds + 1):
            bob_logits = bottom.forward.remote()                              # bob -> alice
            grad, loss = top.step.options(num_returns=2).remote(bob_logits)  # alice -> bob (grad)
            bottom.backward.remote(grad)
            if r == 1 or r % 5 == 0:
                print(f"round {r:2d}  loss {fed.get(loss):.4f}", flush=True)
        acc = top.accuracy.remote(bottom.forward.remote(test=True))
        print(f"final accuracy {fed.get(acc):.3f} on {N_TEST} held-out rows", flush=True)
    finally:
        fed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
