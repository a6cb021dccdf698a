"""Small float64 ReLU MLPs trained on scikit-learn's digits (shared by several figures).

scikit-learn ships the digits data, so nothing is downloaded. Training is full-batch gradient
descent on L_CE + λ Σ‖W‖_F² (:func:`synthetic.networks.train_l2`), deterministic given the seeds.
:func:`telescoped_budgets` evaluates the certified multi-layer budget of a change of several
layers, one layer at a time in the intermediate networks (M-Lemma 5.1 telescoped, Trap T7).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from certkit.budget import BudgetResult, compute_budget
from certkit.classification import accuracy, mean_ce
from certkit.lipschitz import lipschitz_L1
from certkit.mlp import MLP
from certkit.results import LipschitzBound
from synthetic.networks import train_l2

from .._threads import one_thread

__all__ = ["BudgetTerm", "DigitsMLP", "digits_split", "replace_weight", "telescoped_budgets",
           "train_digits_mlp"]

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
    """A trained network and its data (float64 inputs scaled to [0, 1])."""

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


@dataclass(frozen=True)
class BudgetTerm:
    """One step of :func:`telescoped_budgets`: layer ``j``, its inputs ``V`` and ``L`` in the
    intermediate network, and the certified budget of the change ``R_j``."""

    j: int
    V: torch.Tensor
    L: LipschitzBound
    budget: BudgetResult


def replace_weight(mlp: MLP, k: int, W: torch.Tensor) -> MLP:
    """``mlp`` with weight ``k`` replaced by ``W`` (biases and activation kept)."""
    Ws = list(mlp.weights)
    Ws[k] = W
    return MLP(tuple(Ws), mlp.biases, mlp.activation, mlp.final_activation)


def digits_split(seed: int, quick: bool) -> tuple[torch.Tensor, ...]:
    """Digits scaled to [0, 1] and a seeded train/test split: ``(x, y, x_test, y_test)``.

    Quick mode keeps the first :data:`SAMPLES_QUICK` training samples.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.data / 16.0)
    y = torch.from_numpy(d.target).long()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(TEST_FRACTION * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    if quick:
        train = train[:SAMPLES_QUICK]
    return x[train], y[train], x[test], y[test]


@lru_cache(maxsize=16)
def train_digits_mlp(seed: int, quick: bool, *, widths: tuple[int, ...] = WIDTHS, lr: float = LR,
                     init_seed: int | None = None, steps: int | None = None) -> DigitsMLP:
    """Train a ReLU MLP (He-normal init, zero biases) on the seeded digits split of ``seed``.

    ``init_seed`` seeds the initial weights (default: ``seed``); ``steps`` defaults to
    :data:`STEPS_QUICK` / :data:`STEPS_FULL`. Cached per process; callers must not modify the
    returned tensors in place. Runs on one thread (:func:`one_thread`).
    """
    x, y, x_test, y_test = digits_split(seed, quick)
    gen = torch.Generator().manual_seed(seed if init_seed is None else init_seed)
    Ws = tuple(torch.randn(widths[i + 1], widths[i], generator=gen, dtype=torch.float64)
               * (2.0 / widths[i]) ** 0.5 for i in range(len(widths) - 1))
    bs = tuple(torch.zeros(w, dtype=torch.float64) for w in widths[1:])
    if steps is None:
        steps = STEPS_QUICK if quick else STEPS_FULL
    with one_thread():
        res = train_l2(MLP(Ws, bs, activation="relu"), x, y, lam=TRAIN_LAM, steps=steps, lr=lr,
                       tol=0.0, record_every=steps)
    return DigitsMLP(res.mlp, x, y, x_test, y_test)


def telescoped_budgets(start: MLP, end: MLP, x: torch.Tensor, layers) -> list[BudgetTerm]:
    r"""Certified budgets of changing ``layers`` of ``start`` into those of ``end``, output-first.

    Walks from ``start`` to the network with ``end``'s weights on ``layers``, replacing one
    layer at a time, last layer first. Step j changes W_j by R_j = start.W_j − end.W_j with
    layers after j already replaced and layers before j not yet, so the inputs ``v_{j,s}`` and
    the rigorous data-free constant L1 of the downstream part are those of the intermediate
    network (Trap T7). By M-Lemma 5.1 applied per step,
    :math:`|L_{CE}(start) - L_{CE}(end)| \le \sum_j B_j(R_j)` (E-Cor 1.3 / M-Thm 5.8's CE part).
    The change need not be a mask: the CE path bound holds for any decomposition.
    """
    state, terms = start, []
    for j in sorted(layers, reverse=True):
        V = state.layer_input(j, x)
        L = lipschitz_L1(state, j)
        terms.append(BudgetTerm(j, V, L, compute_budget(start.weights[j] - end.weights[j], V, L)))
        state = replace_weight(state, j, end.weights[j])
    return terms
