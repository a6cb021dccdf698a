r"""S+R layers and networks, synthetic data sets T and L2 training to near stationarity.

Generators for the Monte Carlo experiments of :mod:`synthetic.experiments` (issue 3):

* :func:`sr_layer` — one weight matrix W = S + R: S of low rank with chosen singular values and
  Haar-random singular vectors, R with iid entries of variance **g/rows** (N = rows, Trap T1;
  E-Assumption 3.3, E-Ex 2.5) from a Gaussian, Rademacher or uniform law.
* :func:`sr_mlp` — an :class:`certkit.mlp.MLP` whose target layer(s) are S + R and whose other
  layers follow the outer-layer scaling of E-Assumption 3.1 (Trap T11, see below).
* :func:`gaussian_mixture`, :func:`teacher_student` — finite labelled sets T = (x, labels).
* :func:`train_l2` — full-batch gradient descent on the Section-4 objective
  L = L_CE + λ_reg Σ_i ‖W_i‖_F² (THEORY §2.4) to near stationarity, with the stationarity error
  ε = ‖∇L‖_F and a history of the R-part, the tail energy and its [D] bound.

Outer-layer scaling (E-Assumption 3.1, Trap T11)
------------------------------------------------
The asymptotic results need :math:`a(N,s) = \|W_3\|_{\infty\to\infty}\|W_1 s\|_2
\sqrt{\log(2N)/N} \to 0`, which width alone does not give. ``outer_scale="normalized"``
(default) rescales every non-target layer *deterministically*:

* layers upstream of the last target layer have **unit operator norm**, so with λ ∈ {ReLU, |·|}
  (1-Lipschitz, λ(0) = 0) and no biases, ``‖ψ1(s)‖_2 ≤ ‖s‖_2`` for every N;
* layers downstream of the last target layer have **unit induced ∞-norm**
  (max absolute row sum = 1), so the L0 Lipschitz bound of ψ2 through them is 1 for every N.

``outer_scale="fan_in"`` is the standard LeCun initialisation (entries N(0, 1/cols)). It
**violates** E-Assumption 3.1: ‖W1 s‖_2 ≈ sqrt(N/d)‖s‖_2 and ‖W3‖_{∞→∞} ≈ sqrt(2N/π), so
a(N,s) grows like sqrt(N log N) (THEORY §2.5 scaling reality check). It is provided as a
control only.

A consequence worth knowing: with delocalised (Haar / iid) layers and the normalised scaling,
the logits themselves are O(sqrt(log N / N)), so L_CE → log K as N grows. The theorems hold in
this regime (that is what the assumption buys), but the network is close to chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from certkit._validation import as_tensor, check_generator, check_int, check_scalar
from certkit.mlp import ACTIVATIONS, MLP

__all__ = [
    "LAWS",
    "OUTER_SCALES",
    "TrainResult",
    "gaussian_mixture",
    "haar_orthonormal",
    "outer_scale_invariants",
    "sr_layer",
    "sr_mlp",
    "teacher_student",
    "train_l2",
]

#: Entry laws of the random component R (all mean 0, variance g/rows; THEORY §3.4).
LAWS = ("gaussian", "rademacher", "uniform")
#: Outer-layer scalings of :func:`sr_mlp` ("fan_in" violates E-Assumption 3.1).
OUTER_SCALES = ("normalized", "fan_in")

#: Default spike strengths of S in units of √g when ``spikes`` is None: evenly spaced from
#: 3√g down to 2√g, i.e. every spike supercritical (σ > √g, E-Cor 5.2) and distinct.
DEFAULT_SPIKE_RANGE = (3.0, 2.0)


# ----------------------------------------------------------------------------- validation
def _seed(seed) -> np.random.Generator:
    return check_generator(seed)


def _check_law(law: str) -> str:
    if law not in LAWS:
        raise ValueError(f"law == {law!r}, must be one of {LAWS}")
    return law


def _check_spikes(spikes, rank: int, g: float) -> np.ndarray:
    if spikes is None:
        if rank == 0:
            return np.zeros(0)
        unit = math.sqrt(g) if g > 0 else 1.0
        return unit * np.linspace(*DEFAULT_SPIKE_RANGE, rank) if rank > 1 else \
            np.array([unit * DEFAULT_SPIKE_RANGE[0]])
    arr = np.atleast_1d(np.asarray(spikes, dtype=np.float64))
    if arr.ndim != 1 or arr.size != rank:
        raise ValueError(f"spikes must have shape (rank,) = ({rank},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"spikes must be finite and >= 0, got {arr.tolist()}")
    return np.sort(arr)[::-1].copy()


# ----------------------------------------------------------------------------- layers
def haar_orthonormal(n: int, k: int, *, seed=None) -> np.ndarray:
    """An n×k matrix with orthonormal columns, Haar-distributed (QR with sign correction)."""
    n = check_int(n, "n", min_val=1)
    k = check_int(k, "k", min_val=0)
    if k > n:
        raise ValueError(f"k == {k}, must be <= n == {n}")
    rng = _seed(seed)
    if k == 0:
        return np.zeros((n, 0))
    Q, Rq = np.linalg.qr(rng.standard_normal((n, k)))
    signs = np.sign(np.diag(Rq))
    signs[signs == 0] = 1.0
    return Q * signs


def _noise(rng: np.random.Generator, shape: tuple[int, int], var: float, law: str) -> np.ndarray:
    sd = math.sqrt(var)
    if law == "gaussian":
        return sd * rng.standard_normal(shape)
    if law == "rademacher":
        return sd * (2.0 * rng.integers(0, 2, size=shape) - 1.0)
    a = math.sqrt(3.0 * var)  # U(−a, a) has variance a²/3
    return rng.uniform(-a, a, size=shape)


def sr_layer(rows: int, cols: int, *, rank: int, spikes=None, g: float, law: str = "gaussian",
             seed=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw one S + R weight matrix of shape ``(rows, cols)`` (PyTorch ``(out, in)`` layout).

    Parameters
    ----------
    rows, cols : int
        N (outputs) and M (inputs); N = rows is the paper's width (Trap T1).
    rank : int
        Rank r of S (0 gives S = 0); ``r <= min(rows, cols)``.
    spikes : array_like of shape (rank,), optional
        Singular values σ_1 ≥ … ≥ σ_r ≥ 0 of S. Default: evenly spaced from 3√g to 2√g
        (supercritical, E-Cor 5.2).
    g : float
        Noise gain g ≥ 0: entries of R are iid with mean 0 and variance g/rows.
    law : {"gaussian", "rademacher", "uniform"}
        Entry law of R: N(0, g/rows), ±sqrt(g/rows), or U(−a, a) with a = sqrt(3g/rows).
    seed : None, int or numpy Generator

    Returns
    -------
    (S, R) : tuple of torch.Tensor, float64, shape (rows, cols)
        :math:`S = U\,\mathrm{diag}(\sigma)\,V^\top` with Haar-random orthonormal U (rows×r) and
        V (cols×r); R independent of S.
    """
    rows = check_int(rows, "rows", min_val=1)
    cols = check_int(cols, "cols", min_val=1)
    rank = check_int(rank, "rank", min_val=0)
    if rank > min(rows, cols):
        raise ValueError(f"rank == {rank}, must be <= min(rows, cols) == {min(rows, cols)}")
    g = check_scalar(g, "g", min_val=0.0)
    law = _check_law(law)
    sig = _check_spikes(spikes, rank, g)
    rng = _seed(seed)
    U = haar_orthonormal(rows, rank, seed=rng)
    V = haar_orthonormal(cols, rank, seed=rng)
    S = (U * sig) @ V.T if rank else np.zeros((rows, cols))
    R = _noise(rng, (rows, cols), g / rows, law)
    return torch.from_numpy(S), torch.from_numpy(R)


# ----------------------------------------------------------------------------- networks
def _check_widths(widths) -> tuple[int, ...]:
    try:
        ws = tuple(widths)
    except TypeError as exc:
        raise TypeError(f"widths must be a sequence of ints, got {type(widths).__name__}") from exc
    if len(ws) < 2:
        raise ValueError(f"widths must have at least 2 entries (input, output), got {ws}")
    return tuple(check_int(w, f"widths[{i}]", min_val=1) for i, w in enumerate(ws))


def _check_targets(target, depth: int, name: str = "target") -> tuple[int, ...]:
    ts = (target,) if isinstance(target, int | np.integer) and not isinstance(target, bool) \
        else tuple(target) if isinstance(target, Sequence) else None
    if not ts:
        raise ValueError(f"{name} == {target!r}, must be a layer index or a non-empty sequence of them")
    out = []
    for t in ts:
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= int(t) < depth:
            raise ValueError(f"{name} == {target!r}, every entry must be a layer index in [0, {depth})")
        out.append(int(t))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} == {target!r}, must not repeat a layer")
    return tuple(sorted(out))


def _outer_layer(rng, rows: int, cols: int, downstream: bool, outer_scale: str) -> np.ndarray:
    if outer_scale == "fan_in":
        return rng.standard_normal((rows, cols)) / math.sqrt(cols)
    W = rng.standard_normal((rows, cols)) / math.sqrt(rows)
    if downstream:
        return W / np.abs(W).sum(axis=1).max()  # ‖W‖_{∞→∞} = 1
    return W / np.linalg.norm(W, 2)  # ‖W‖_op = 1


def sr_mlp(widths, *, target=1, activation: str = "relu", final_activation: bool = False,
           g: float = 1.0, rank: int = 2, spikes=None, law: str = "gaussian",
           outer_scale: str = "normalized", seed=None
           ) -> tuple[MLP, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    r"""Bias-free MLP with S + R target layer(s) and E-Assumption 3.1 outer scaling.

    Parameters
    ----------
    widths : sequence of int
        ``(d, N_1, …, K)``; layer k (0-based) has shape ``(widths[k+1], widths[k])``. The
        three-layer model of E-Assumption 3.1 is ``(d, N, N, K)`` with ``target=1``.
    target : int or sequence of int
        Layer(s) drawn as S + R by :func:`sr_layer` (several for M-Thm 4.6).
    activation : {"relu", "abs"}
    final_activation : bool
        Apply λ after the last layer too (the paper's convention).
    g, rank, spikes, law
        Passed to :func:`sr_layer` for every target layer.
    outer_scale : {"normalized", "fan_in"}
        ``"normalized"``: non-target layers upstream of the last target get unit operator norm,
        those downstream unit induced ∞-norm (E-Assumption 3.1 holds). ``"fan_in"``: entries
        N(0, 1/cols), which **violates** E-Assumption 3.1 (control; see the module docstring).
    seed : None, int or numpy Generator

    Returns
    -------
    (mlp, S, R)
        ``mlp`` with weights ``S_k + R_k`` at the target layers and zero biases; ``S`` and ``R``
        are tuples with one matrix per target layer (ascending layer order).
    """
    ws = _check_widths(widths)
    depth = len(ws) - 1
    targets = _check_targets(target, depth)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation == {activation!r}, must be one of {ACTIVATIONS}")
    if outer_scale not in OUTER_SCALES:
        raise ValueError(f"outer_scale == {outer_scale!r}, must be one of {OUTER_SCALES}")
    rng = _seed(seed)
    weights, Ss, Rs = [], [], []
    for k in range(depth):
        rows, cols = ws[k + 1], ws[k]
        if k in targets:
            S, R = sr_layer(rows, cols, rank=rank, spikes=spikes, g=g, law=law, seed=rng)
            Ss.append(S)
            Rs.append(R)
            weights.append(S + R)
        else:
            W = _outer_layer(rng, rows, cols, k > targets[-1], outer_scale)
            weights.append(torch.from_numpy(W))
    biases = tuple(torch.zeros(ws[k + 1], dtype=torch.float64) for k in range(depth))
    mlp = MLP(tuple(weights), biases, activation, bool(final_activation))
    return mlp, tuple(Ss), tuple(Rs)


def outer_scale_invariants(mlp: MLP, x, *, target: int = 1) -> dict[str, float]:
    r"""The two E-Assumption 3.1 quantities for a three-layer-style net and inputs x.

    Returns ``{"w3_inf": Π_{j>target} ‖W_j‖_{∞→∞}, "w1s_max": max_s ‖ψ1(s)‖_2,
    "w1s_lin_max": max_s ‖W_{target−1}⋯W_0 s‖_2 (no activation, = ‖W1 s‖_2 for target 1)}``.
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be a certkit.mlp.MLP, got {type(mlp).__name__}")
    x = as_tensor(x, "x", ndim=2, shape_hint="(|T|, d)")
    w3 = 1.0
    for W in mlp.downstream(target):
        w3 *= float(W.abs().sum(dim=1).max())
    v = mlp.layer_input(target, x)
    h = x
    for W in mlp.weights[:target]:
        h = h @ W.T
    return {"w3_inf": w3, "w1s_max": float(v.norm(dim=1).max()),
            "w1s_lin_max": float(h.norm(dim=1).max())}


# ----------------------------------------------------------------------------- data sets T
def gaussian_mixture(n: int, d: int, K: int, *, separation: float = 2.0, noise: float = 1.0,
                     seed=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Balanced K-class Gaussian mixture in ℝ^d with ‖x‖_2 = O(1).

    Class means are ``separation/2 ·`` Haar-random orthonormal directions (K ≤ d) or
    independent random unit vectors (K > d); samples are mean + N(0, noise²/d · I), so the
    noise has norm ≈ ``noise`` whatever d is. Labels are ``i mod K`` in a random order.

    Returns
    -------
    (x, labels) : float64 tensor (n, d), int64 tensor (n,)
    """
    n = check_int(n, "n", min_val=1)
    d = check_int(d, "d", min_val=1)
    K = check_int(K, "K", min_val=2)
    separation = check_scalar(separation, "separation", min_val=0.0)
    noise = check_scalar(noise, "noise", min_val=0.0)
    rng = _seed(seed)
    if K <= d:
        dirs = haar_orthonormal(d, K, seed=rng).T
    else:
        dirs = rng.standard_normal((K, d))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    labels = rng.permutation(np.arange(n) % K)
    x = 0.5 * separation * dirs[labels] + noise / math.sqrt(d) * rng.standard_normal((n, d))
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def teacher_student(n: int, teacher: MLP, *, input_scale: float = 1.0, seed=None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Inputs x ~ N(0, input_scale²/d · I) labelled by a teacher network: argmax of its logits.

    Ties go to the lowest class index. The teacher is any :class:`certkit.mlp.MLP` (e.g. from
    :func:`sr_mlp` with R = 0, i.e. ``g=0``); d = ``teacher.widths[0]``, K = ``teacher.widths[-1]``.

    Returns
    -------
    (x, labels) : float64 tensor (n, d), int64 tensor (n,)
    """
    n = check_int(n, "n", min_val=1)
    if not isinstance(teacher, MLP):
        raise TypeError(f"teacher must be a certkit.mlp.MLP, got {type(teacher).__name__}")
    if teacher.widths[-1] < 2:
        raise ValueError(f"teacher must have K >= 2 outputs, got widths {teacher.widths}")
    input_scale = check_scalar(input_scale, "input_scale", min_val=0.0, include_min=False)
    rng = _seed(seed)
    d = teacher.widths[0]
    x = torch.from_numpy(input_scale / math.sqrt(d) * rng.standard_normal((n, d)))
    labels = teacher(x).argmax(dim=1)
    return x, labels


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainResult:
    r"""Result of :func:`train_l2`.

    Attributes
    ----------
    mlp : MLP
        The trained network (float64, biases unchanged).
    loss, ce : float
        Final L = L_CE + λ Σ‖W_i‖_F² (all layers) and L_CE.
    grad_norm : float
        Stationarity error ε = ‖∇L‖_F over the trainable weights at the final point.
    steps : int
        Gradient steps taken.
    converged : bool
        ``grad_norm < tol``.
    shrink : float
        Π_t (1 − 2·lr·λ): the factor by which weight decay alone scaled every trainable matrix.
        A component present at initialisation and never reinforced by the CE gradient is
        multiplied by it; for W = S0 + R0 the trajectory decomposition
        ``R(t) = shrink·R0``, ``S(t) = W(t) − R(t)`` keeps R(t) iid with gain g·shrink².
    history : dict of tuples
        Recorded every ``record_every`` steps (and at the first and last step), for the
        ``monitor`` layer: ``step``, ``loss``, ``grad_norm``, ``r_part`` (‖W − P_k W‖_F with k =
        ``rank``), ``tail_energy`` (Σ_{i>|T|} s_i(W)²) and ``tail_bound``
        ((‖∇_W L‖_F / (2λ))², THEORY §2.4.4 [D]: tail_energy ≤ tail_bound at every point).
    """

    mlp: MLP
    loss: float
    ce: float
    grad_norm: float
    steps: int
    converged: bool
    shrink: float
    history: dict = field(default_factory=dict)


def _forward(weights, biases, activation: str, final_activation: bool, x):
    h = x
    last = len(weights) - 1
    for j, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ W.T + b
        if j < last or final_activation:
            h = torch.relu(h) if activation == "relu" else h.abs()
    return h


def _objective(weights, mlp: MLP, x, y, lam: float):
    z = _forward(weights, mlp.biases, mlp.activation, mlp.final_activation, x)
    ce = (torch.logsumexp(z, dim=1) - z.gather(1, y[:, None]).squeeze(1)).mean()
    reg = sum((W * W).sum() for W in weights)
    return ce + lam * reg, ce


def _tail_stats(W: torch.Tensor, n_terms: int, rank: int) -> tuple[float, float]:
    s = torch.linalg.svdvals(W)
    return float((s[rank:] ** 2).sum().sqrt()), float((s[n_terms:] ** 2).sum())


def train_l2(mlp: MLP, x, labels, *, lam: float, steps: int, lr: float, tol: float = 1e-8,
             trainable=None, monitor: int = 1, rank: int = 2, record_every: int = 10
             ) -> TrainResult:
    r"""Full-batch gradient descent on L = L_CE + λ Σ_i ‖W_i‖_F² to near stationarity.

    The Section-4 objective (THEORY §2.4; regularisers not divided by |T|, Trap T15). Runs on a
    functional float64 copy of the weights with torch autograd; biases stay fixed (zero in
    :func:`sr_mlp`, E-Assumption 3.1 has none). Stops after ``steps`` steps or when
    ε = ‖∇L‖_F (over the trainable weights) drops below ``tol``.

    Parameters
    ----------
    mlp : MLP
    x : array_like (|T|, d)
    labels : array_like (|T|,) of ints in [0, K)
    lam : float
        λ_reg > 0.
    steps : int
        Maximum number of gradient steps (≥ 0).
    lr : float
        Fixed step size > 0; decay alone shrinks a weight by (1 − 2·lr·λ) per step, so
        ``lr < 1/(2λ)`` is required.
    tol : float
        Stop when ε < tol.
    trainable : None or sequence of int
        Layers updated (default: all).
    monitor : int
        Layer whose spectrum is recorded in the history (need not be trainable).
    rank : int
        k of the R-part proxy ‖W − P_k W‖_F (P_k: best rank-k approximation).
    record_every : int
        History period in steps.

    Returns
    -------
    TrainResult
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be a certkit.mlp.MLP, got {type(mlp).__name__}")
    x = as_tensor(x, "x", ndim=2, shape_hint="(|T|, d)")
    if x.shape[1] != mlp.widths[0]:
        raise ValueError(f"x must have shape (|T|, {mlp.widths[0]}), got {tuple(x.shape)}")
    y = torch.as_tensor(labels).reshape(-1).long()
    K = mlp.widths[-1]
    if y.numel() != x.shape[0]:
        raise ValueError(f"labels must have shape (|T|,) = ({x.shape[0]},), got {tuple(y.shape)}")
    if bool(((y < 0) | (y >= K)).any()):
        raise ValueError(f"labels must lie in [0, K) = [0, {K})")
    lam = check_scalar(lam, "lam", min_val=0.0, include_min=False)
    lr = check_scalar(lr, "lr", min_val=0.0, include_min=False)
    if 2.0 * lr * lam >= 1.0:
        raise ValueError(f"lr == {lr}, must be < 1/(2·lam) == {0.5 / lam:.6g} (weight decay "
                         "would flip the sign of the weights)")
    steps = check_int(steps, "steps", min_val=0)
    tol = check_scalar(tol, "tol", min_val=0.0)
    rank = check_int(rank, "rank", min_val=0)
    record_every = check_int(record_every, "record_every", min_val=1)
    train = tuple(range(mlp.depth)) if trainable is None else _check_targets(trainable, mlp.depth,
                                                                             "trainable")
    if isinstance(monitor, bool) or not isinstance(monitor, int) or not 0 <= monitor < mlp.depth:
        raise ValueError(f"monitor == {monitor!r}, must be a layer index in [0, {mlp.depth})")
    n_terms = x.shape[0]
    weights = [W.detach().clone().requires_grad_(True) for W in mlp.weights]
    hist: dict[str, list] = {k: [] for k in ("step", "loss", "grad_norm", "r_part",
                                             "tail_energy", "tail_bound")}
    shrink, t = 1.0, 0
    while True:
        loss, ce = _objective(weights, mlp, x, y, lam)
        grads = torch.autograd.grad(loss, weights)
        eps = math.sqrt(sum(float((grads[j] ** 2).sum()) for j in train))
        done = eps < tol or t >= steps
        if t % record_every == 0 or done:
            Wm = weights[monitor].detach()
            r_part, tail = _tail_stats(Wm, n_terms, rank)
            hist["step"].append(t)
            hist["loss"].append(float(loss.detach()))
            hist["grad_norm"].append(eps)
            hist["r_part"].append(r_part)
            hist["tail_energy"].append(tail)
            hist["tail_bound"].append(float((grads[monitor] ** 2).sum()) / (2.0 * lam) ** 2)
        if done:
            break
        with torch.no_grad():
            for j in train:
                weights[j] -= lr * grads[j]
        shrink *= 1.0 - 2.0 * lr * lam
        t += 1
    trained = MLP(tuple(W.detach() for W in weights), mlp.biases, mlp.activation,
                  mlp.final_activation)
    return TrainResult(trained, float(loss.detach()), float(ce.detach()), eps, t, eps < tol, shrink,
                       {k: tuple(v) for k, v in hist.items()})
