r"""Cross-entropy, margins and accuracy on logits, as the paper defines them (M-§2.1, M-Cor 5.2).

* ``ℓ_s(z) = −z_{C(s)} + logsumexp(z)`` (numerically stable), dataset loss = mean over T.
* prediction margin ``Δ_pred = z_p − max_{j≠p} z_j`` (p = argmax), true-label margin
  ``Δ_true = z_{C(s)} − max_{j≠C(s)} z_j``; a sample is correct iff ``Δ_true > 0``
  (strict: ties count as wrong, Trap T21).
"""

from __future__ import annotations

import torch

from ._validation import as_tensor

__all__ = ["per_sample_ce", "mean_ce", "true_margins", "prediction_margins", "correct", "accuracy"]


def _logits_labels(logits, labels):
    z = as_tensor(logits, "logits", ndim=2, shape_hint="(|T|, K)")
    if z.shape[1] < 2:
        raise ValueError(f"logits must have K >= 2 classes, got shape {tuple(z.shape)}")
    if labels is None:
        return z, None
    y = torch.as_tensor(labels).reshape(-1).long()
    if y.numel() != z.shape[0]:
        raise ValueError(f"labels must have shape (|T|,) = ({z.shape[0]},), got {tuple(y.shape)}")
    if bool(((y < 0) | (y >= z.shape[1])).any()):
        raise ValueError(f"labels must lie in [0, K) = [0, {z.shape[1]})")
    return z, y


def per_sample_ce(logits, labels) -> torch.Tensor:
    """Per-sample cross-entropy ``−z_y + logsumexp(z)``, shape (|T|,), float64."""
    z, y = _logits_labels(logits, labels)
    return torch.logsumexp(z, dim=1) - z.gather(1, y[:, None]).squeeze(1)


def mean_ce(logits, labels) -> float:
    """Dataset cross-entropy ``L_CE = (1/|T|) Σ_s ℓ_s`` (regularisers are not averaged)."""
    return float(per_sample_ce(logits, labels).mean())


def _margin(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    own = z.gather(1, idx[:, None]).squeeze(1)
    others = z.clone()
    others.scatter_(1, idx[:, None], float("-inf"))
    return own - others.max(dim=1).values


def true_margins(logits, labels) -> torch.Tensor:
    """``Δ_true(s) = z_{C(s)} − max_{j≠C(s)} z_j``, shape (|T|,)."""
    z, y = _logits_labels(logits, labels)
    return _margin(z, y)


def prediction_margins(logits) -> torch.Tensor:
    """``Δ_pred(s) = z_p − max_{j≠p} z_j`` with p = argmax (≥ 0), shape (|T|,)."""
    z, _ = _logits_labels(logits, None)
    return _margin(z, z.argmax(dim=1))


def correct(logits, labels) -> torch.Tensor:
    """Boolean correctness ``Δ_true > 0`` (ties are wrong, Trap T21)."""
    return true_margins(logits, labels) > 0


def accuracy(logits, labels) -> float:
    """Fraction of samples with ``Δ_true > 0``."""
    return float(correct(logits, labels).double().mean())
