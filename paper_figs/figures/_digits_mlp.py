"""A small float64 ReLU MLP trained on scikit-learn's digits (shared by several figures).

scikit-learn ships the digits data, so nothing is downloaded. Training is full-batch gradient
descent on L_CE + λ Σ‖W‖_F² (:func:`synthetic.networks.train_l2`), deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from certkit.classification import accuracy, mean_ce
from certkit.mlp import MLP
from synthetic.networks import train_l2

__all__ = ["DigitsMLP", "replace_weight", "train_digits_mlp"]

WIDTHS = (64, 48, 48, 10)
#: λ of the training objective L_CE + λ Σ‖W‖_F² (λ2 of the certificates' J).
TRAIN_LAM = 1e-3
LR = 0.5
STEPS_QUICK, STEPS_FULL = 300, 3000
#: Training samples in quick mode (full mode: the whole training split).
SAMPLES_QUICK = 500
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class DigitsMLP:
    """The trained network and its data (float64 inputs scaled to [0, 1])."""

    mlp: MLP
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def ce(self, mlp: MLP | None = None, *, test: bool = False) -> float:
        net = mlp or self.mlp
        return mean_ce(net.forward(self.x_test if test else self.x), self.y_test if test else self.y)

    def acc(self, mlp: MLP | None = None, *, test: bool = False) -> float:
        net = mlp or self.mlp
        return accuracy(net.forward(self.x_test if test else self.x), self.y_test if test else self.y)


def replace_weight(mlp: MLP, k: int, W: torch.Tensor) -> MLP:
    """``mlp`` with weight ``k`` replaced by ``W`` (biases and activation kept)."""
    Ws = list(mlp.weights)
    Ws[k] = W
    return MLP(tuple(Ws), mlp.biases, mlp.activation, mlp.final_activation)


@lru_cache(maxsize=4)
def train_digits_mlp(seed: int, quick: bool) -> DigitsMLP:
    """Train the [64, 48, 48, 10] ReLU MLP on a seeded train split of digits (cached per process;
    callers must not modify the returned tensors in place)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.data / 16.0)
    y = torch.from_numpy(d.target).long()
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    n_test = int(round(TEST_FRACTION * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    if quick:
        train = train[:SAMPLES_QUICK]
    Ws = tuple(torch.randn(WIDTHS[i + 1], WIDTHS[i], generator=gen, dtype=torch.float64)
               * (2.0 / WIDTHS[i]) ** 0.5 for i in range(len(WIDTHS) - 1))
    bs = tuple(torch.zeros(w, dtype=torch.float64) for w in WIDTHS[1:])
    steps = STEPS_QUICK if quick else STEPS_FULL
    res = train_l2(MLP(Ws, bs, activation="relu"), x[train], y[train], lam=TRAIN_LAM, steps=steps,
                   lr=LR, tol=0.0, record_every=steps)
    return DigitsMLP(res.mlp, x[train], y[train], x[test], y[test])
