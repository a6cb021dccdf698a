"""Shared evaluation helpers of the certificate property suites (not a test module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from certkit.lipschitz import lipschitz_L0, lipschitz_L1, lipschitz_L2, lipschitz_L3
from certkit.mlp import MLP

KINK_TOL = 1e-9


def lipschitz_levels(mlp: MLP, k: int, S, R, x) -> dict:
    """Every rigorous level of THEORY §1.6 for the path S + θR."""
    return {
        "L0": lipschitz_L0(mlp, k),
        "L1": lipschitz_L1(mlp, k),
        "L2": lipschitz_L2(mlp, k, S, R, x),
        "L3": lipschitz_L3(mlp, k, S, R, x),
    }


def elastic_penalty(W: torch.Tensor, lam1: float, lam2: float) -> float:
    return float(lam2 * (W * W).sum() + lam1 * W.abs().sum())


def ce_grad(mlp: MLP, k: int, W: torch.Tensor, x, labels) -> torch.Tensor:
    """∇_W L_CE at W (autograd through ψ2; the MLP's own forward detaches)."""
    W = W.clone().requires_grad_(True)
    v = mlp.layer_input(k, x)
    z = mlp.psi2(k, v @ W.T)
    F.cross_entropy(z, labels).backward()
    return W.grad.detach()


def min_abs_preactivation(mlp: MLP, k: int, W: torch.Tensor, x) -> float:
    """Smallest |pre-activation| at or after layer k (distance to a ReLU/abs kink)."""
    h = mlp.layer_input(k, x)
    out = float("inf")
    for j in range(k, mlp.depth):
        Wj = W if j == k else mlp.weights[j]
        pre = h @ Wj.T + mlp.biases[j]
        if j < mlp.depth - 1 or mlp.final_activation:
            out = min(out, float(pre.abs().min()))
        h = torch.relu(pre) if mlp.activation == "relu" else pre.abs()
    return out


def loss_scale(*logit_sets: torch.Tensor) -> float:
    """THEORY §0.3 `scale`: magnitude of the largest summed term (logits, per-sample CE)."""
    return max(float(z.abs().max()) for z in logit_sets) * 2 + 1.0
