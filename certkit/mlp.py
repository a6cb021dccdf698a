r"""A small float64 MLP with an explicit factorisation around one target layer (THEORY §1.3–1.4).

The paper's network is ``X = λ∘M_L∘…∘λ∘M_1`` with affine maps ``M_k(x) = W_k x + b_k`` and
λ = ReLU or |·|; the paper applies λ after the last map too (``final_activation=True``), a
standard classifier does not. For target layer k (0-based) with matrix ``A = W_k``:

* ``ψ1(s) = v_s`` is the input of layer k,
* ``ψ2(u)`` maps the *pre-bias* output ``u = A v_s`` to logits; it contains the layer's own bias
  and activation, so these never enter the removed component,
* logits ``z_A(s) = ψ2(A v_s)``.

This module is the reference model of the property suites; :mod:`certkit.lipschitz` computes
rigorous ``L_s`` bounds for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._validation import as_tensor

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "abs")


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) if name == "relu" else x.abs()


@dataclass(frozen=True)
class MLP:
    """Fully connected ReLU/abs network in float64.

    Parameters
    ----------
    weights : sequence of tensors
        ``W_1 … W_L`` with ``W_k`` of shape (N_k, N_{k−1}).
    biases : sequence of tensors
        ``b_1 … b_L`` with ``b_k`` of shape (N_k,).
    activation : {"relu", "abs"}
    final_activation : bool
        Apply the activation after the last affine map (the paper's convention).
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    activation: str = "relu"
    final_activation: bool = False

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation == {self.activation!r}, must be one of {ACTIVATIONS}")
        if len(self.weights) == 0 or len(self.weights) != len(self.biases):
            raise ValueError(
                f"weights and biases must be non-empty and of equal length, got "
                f"{len(self.weights)} and {len(self.biases)}"
            )
        Ws = tuple(as_tensor(W, f"weights[{i}]", ndim=2) for i, W in enumerate(self.weights))
        bs = tuple(as_tensor(b, f"biases[{i}]", ndim=1) for i, b in enumerate(self.biases))
        for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
            if b.shape[0] != W.shape[0]:
                raise ValueError(f"biases[{i}] must have shape ({W.shape[0]},), got {tuple(b.shape)}")
            if i and W.shape[1] != Ws[i - 1].shape[0]:
                raise ValueError(
                    f"weights[{i}] must have {Ws[i - 1].shape[0]} columns, got shape {tuple(W.shape)}"
                )
        object.__setattr__(self, "weights", Ws)
        object.__setattr__(self, "biases", bs)

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.weights[0].shape[1],) + tuple(W.shape[0] for W in self.weights)

    def _activate(self, j: int, x: torch.Tensor) -> torch.Tensor:
        if j < self.depth - 1 or self.final_activation:
            return _act(self.activation, x)
        return x

    def forward(self, x) -> torch.Tensor:
        """Logits for inputs ``x`` of shape (B, N_0)."""
        h = as_tensor(x, "x", ndim=2)
        for j, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = self._activate(j, h @ W.T + b)
        return h

    __call__ = forward

    def layer_input(self, k: int, x) -> torch.Tensor:
        """``v_s = ψ1(s)``: the input of layer ``k`` (0-based), shape (B, N_{k})."""
        self._check_k(k)
        h = as_tensor(x, "x", ndim=2)
        for j in range(k):
            h = self._activate(j, h @ self.weights[j].T + self.biases[j])
        return h

    def psi2(self, k: int, u: torch.Tensor) -> torch.Tensor:
        """Logits from the pre-bias output ``u = A v`` of layer ``k`` (bias + activation inside)."""
        self._check_k(k)
        h = self._activate(k, u + self.biases[k])
        for j in range(k + 1, self.depth):
            h = self._activate(j, h @ self.weights[j].T + self.biases[j])
        return h

    def with_weight(self, k: int, W) -> MLP:
        """Copy of the network with ``W_k`` replaced by ``W``."""
        self._check_k(k)
        W = as_tensor(W, "W", ndim=2)
        if W.shape != self.weights[k].shape:
            raise ValueError(f"W must have shape {tuple(self.weights[k].shape)}, got {tuple(W.shape)}")
        ws = list(self.weights)
        ws[k] = W
        return MLP(tuple(ws), self.biases, self.activation, self.final_activation)

    def downstream(self, k: int) -> Sequence[torch.Tensor]:
        """Weights after layer ``k``: ``W_{k+1} … W_L``."""
        self._check_k(k)
        return self.weights[k + 1 :]

    def _check_k(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.depth:
            raise ValueError(f"k == {k!r}, must be a layer index in [0, {self.depth})")
