r"""``MaskSet``: the per-layer keep-masks of one pruning run, with provenance and I/O.

A :class:`MaskSet` is what every method of :func:`certkit.masks.build_masks` returns (issue 4
contract): ``masks`` maps module names to bool tensors shaped like ``module.weight`` (True =
kept). It never modifies a model; :func:`certkit.masks.apply_masks` does. Sparsity is counted
over the masked tensors only (ALGORITHMS §A.2: the union of the selected weight tensors; layers
a method skipped are not in the set and not counted).

:meth:`MaskSet.removed` gives the removed component ``R = W ⊙ (1 − M)`` of each layer and
:meth:`MaskSet.kept` the kept part ``S = W ⊙ M`` (so ``S + R = W`` and ``S ⊙ R = 0``, the mask
decomposition of THEORY §1.4 that the certificates need).

Files: :meth:`MaskSet.save` writes ``<path>`` (safetensors: ``mask/<layer>`` bool tensors and
``perm/<layer>`` int64 permutations) and ``<path stem>.json`` beside it (the manifest of
:meth:`MaskSet.to_manifest`: method, parameters, per-layer achieved sparsity, certkit
version); the manifest is also stored in the safetensors header metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._modules import dense_weight, get_module

__all__ = ["MANIFEST_FORMAT", "MaskSet"]

#: Identifier of the manifest layout (bump on incompatible changes).
MANIFEST_FORMAT = "certkit.masks/1"
_MASK_PREFIX = "mask/"
_PERM_PREFIX = "perm/"


def _certkit_version() -> str:
    import certkit

    return str(getattr(certkit, "__version__", "unknown"))


def _jsonable(x, where: str):
    """Normalise to JSON types (tuples -> lists, numpy/torch scalars -> python)."""
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{where} == {x}: manifests hold finite numbers only")
        return float(x)
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if hasattr(x, "item") and getattr(x, "ndim", None) == 0:
        return _jsonable(x.item(), where)
    raise TypeError(f"{where} is a {type(x).__name__}; MaskSet params must be JSON-serialisable "
                    "(numbers, strings, bools, None, lists, dicts)")


@dataclass(frozen=True, eq=False)
class MaskSet:
    """Keep-masks of one pruning run (True = kept), with method and parameters.

    Attributes
    ----------
    masks : dict of str to torch.Tensor of bool
        Module name -> mask shaped like ``module.weight``, in selection order.
    method : str
        Registry name of the method (``"magnitude"``, ...).
    params : dict
        JSON-serialisable parameters (normalised: tuples become lists). Conventions:
        ``params["skipped"]`` maps layers a method left dense to the reason, and
        ``params["pattern"]`` holds a k:n pattern string when the masks follow one.
    permutations : dict of str to torch.Tensor of int64
        Input-channel permutation per layer when the model was permuted (issue 4, ALGORITHMS
        §7.8); masks then refer to the permuted weights. Empty when not permuted.
    certkit_version : str
        Version that produced the masks (default: the running one).
    """

    masks: dict[str, torch.Tensor]
    method: str
    params: dict = field(default_factory=dict)
    permutations: dict[str, torch.Tensor] = field(default_factory=dict)
    certkit_version: str = field(default_factory=_certkit_version)

    def __post_init__(self):
        if not isinstance(self.masks, Mapping):
            raise TypeError(f"masks must be a mapping name -> bool tensor, got "
                            f"{type(self.masks).__name__}")
        masks = {}
        for name, m in self.masks.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"mask names must be non-empty strings, got {name!r}")
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
                got = m.dtype if isinstance(m, torch.Tensor) else type(m).__name__
                raise TypeError(f"masks[{name!r}] must be a bool tensor (True = kept), got {got}")
            masks[name] = m.detach()
        if not isinstance(self.method, str) or not self.method:
            raise TypeError(f"method must be a non-empty string, got {self.method!r}")
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a dict, got {type(self.params).__name__}")
        perms = {}
        for name, p in dict(self.permutations).items():
            if not isinstance(p, torch.Tensor) or p.ndim != 1 or p.is_floating_point() \
                    or p.dtype == torch.bool:
                raise TypeError(f"permutations[{name!r}] must be a 1-D integer tensor")
            p = p.detach().to(torch.int64)
            if not torch.equal(torch.sort(p).values, torch.arange(p.numel(), device=p.device)):
                raise ValueError(f"permutations[{name!r}] is not a permutation of "
                                 f"0..{p.numel() - 1}")
            perms[str(name)] = p
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "params", _jsonable(dict(self.params), "params"))
        object.__setattr__(self, "permutations", perms)

    # ------------------------------------------------------------------ counts
    def __len__(self) -> int:
        return len(self.masks)

    def __contains__(self, name) -> bool:
        return name in self.masks

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    @property
    def names(self) -> list[str]:
        """Masked layer names, in selection order."""
        return list(self.masks)

    @property
    def n_total(self) -> int:
        """Number of entries over all masked tensors."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def n_pruned(self) -> int:
        """Number of pruned (False) entries over all masked tensors."""
        return sum(int(m.numel() - m.sum()) for m in self.masks.values())

    @property
    def achieved_sparsity(self) -> float:
        """Global fraction of pruned entries over the masked tensors (ALGORITHMS §A.2)."""
        total = self.n_total
        return self.n_pruned / total if total else 0.0

    @property
    def layer_sparsity(self) -> dict[str, float]:
        """Per-layer fraction of pruned entries."""
        return {n: float(m.numel() - m.sum()) / m.numel() if m.numel() else 0.0
                for n, m in self.masks.items()}

    # ------------------------------------------------------------------ decomposition
    def _weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        out = {}
        for name, mask in self.masks.items():
            W = dense_weight(get_module(model, name))
            if tuple(W.shape) != tuple(mask.shape):
                raise ValueError(f"mask of layer {name!r} has shape {tuple(mask.shape)}, the "
                                 f"module's weight {tuple(W.shape)}")
            out[name] = W
        return out

    def removed(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Removed component ``R = W ⊙ (1 − M)`` per layer (detached copies).

        ``W`` is the module's weight before any attached ``torch.nn.utils.prune`` mask
        (``weight_orig``), so ``R`` stays available after :func:`~certkit.masks.apply_masks`
        with ``mode="prune"``; after ``mode="inplace"`` the removed entries are gone (R = 0).
        """
        return {n: torch.where(self.masks[n].to(W.device), torch.zeros((), dtype=W.dtype,
                                                                         device=W.device), W)
                for n, W in self._weights(model).items()}

    def kept(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Kept component ``S = W ⊙ M`` per layer (detached copies); ``S + R = W``."""
        return {n: torch.where(self.masks[n].to(W.device), W,
                               torch.zeros((), dtype=W.dtype, device=W.device))
                for n, W in self._weights(model).items()}

    # ------------------------------------------------------------------ equality
    def mask_differences(self, other: MaskSet) -> dict[str, int]:
        """Per-layer number of differing entries (-1 if a layer is missing on one side or
        the shapes differ); layers that agree are left out."""
        out = {}
        for name in dict.fromkeys([*self.masks, *other.masks]):
            a, b = self.masks.get(name), other.masks.get(name)
            if a is None or b is None or a.shape != b.shape:
                out[name] = -1
                continue
            d = int((a.cpu() != b.cpu()).sum())
            if d:
                out[name] = d
        return out

    def same_masks(self, other: MaskSet) -> bool:
        """True iff both sets mask the same layers (same order) with identical masks."""
        return (list(self.masks) == list(other.masks)) and not self.mask_differences(other)

    def equals(self, other: MaskSet, *, check_params: bool = True) -> bool:
        """Same masks, permutations and method (and, by default, parameters)."""
        if not isinstance(other, MaskSet):
            return False
        if not self.same_masks(other) or self.method != other.method:
            return False
        if set(self.permutations) != set(other.permutations) or any(
                not torch.equal(p.cpu(), other.permutations[n].cpu())
                for n, p in self.permutations.items()):
            return False
        return not check_params or self.params == other.params

    def __eq__(self, other) -> bool:
        if not isinstance(other, MaskSet):
            return NotImplemented
        return self.equals(other)

    __hash__ = None  # mutable tensors inside

    def __repr__(self) -> str:
        return (f"MaskSet(method={self.method!r}, layers={len(self.masks)}, "
                f"achieved_sparsity={self.achieved_sparsity:.4f}, "
                f"permuted={len(self.permutations)})")

    # ------------------------------------------------------------------ I/O
    def to_manifest(self) -> dict:
        """JSON-serialisable description (no tensors): method, parameters, per-layer achieved
        sparsity and shapes, permuted layers, certkit version."""
        return {
            "format": MANIFEST_FORMAT,
            "method": self.method,
            "params": self.params,
            "certkit_version": self.certkit_version,
            "achieved_sparsity": self.achieved_sparsity,
            "n_pruned": self.n_pruned,
            "n_total": self.n_total,
            "layers": {n: {"shape": list(m.shape), "n_kept": int(m.sum()),
                           "sparsity": self.layer_sparsity[n]}
                       for n, m in self.masks.items()},
            "layer_order": list(self.masks),
            "permuted_layers": list(self.permutations),
        }

    @staticmethod
    def manifest_path(path) -> Path:
        """The manifest beside a masks file: ``<path without suffix>.json``."""
        return Path(path).with_suffix(".json")

    def save(self, path) -> Path:
        """Write masks + permutations (safetensors) and the JSON manifest beside them.

        Parameters
        ----------
        path : str or Path
            Target file, conventionally ``*.safetensors``; the manifest goes to
            :meth:`manifest_path` (``masks.safetensors`` -> ``masks.json``).

        Returns
        -------
        Path
            The safetensors file.
        """
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix == ".json":
            raise ValueError(f"path == {str(path)!r}: the masks file must not end in .json "
                             "(the manifest is written beside it)")
        manifest = self.to_manifest()
        tensors = {_MASK_PREFIX + n: m.cpu().contiguous() for n, m in self.masks.items()}
        tensors.update({_PERM_PREFIX + n: p.cpu().contiguous()
                        for n, p in self.permutations.items()})
        text = json.dumps(manifest, sort_keys=True, indent=2)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"manifest": json.dumps(manifest, sort_keys=True)})
        self.manifest_path(path).write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path, *, device: str | torch.device = "cpu") -> MaskSet:
        """Read a file written by :meth:`save` (manifest: the JSON file beside it, else the copy
        in the safetensors header); tensors are placed on ``device``."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"masks file {str(path)!r} does not exist")
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = (f.metadata() or {}).get("manifest")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        mpath = cls.manifest_path(path)
        if mpath.is_file():
            manifest = json.loads(mpath.read_text())
        elif header is not None:
            manifest = json.loads(header)
        else:
            raise ValueError(f"{str(path)!r} has no manifest (neither {mpath.name} nor header "
                             "metadata); it was not written by MaskSet.save")
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"manifest format == {manifest.get('format')!r}, expected "
                             f"{MANIFEST_FORMAT!r}")
        order = manifest.get("layer_order") or sorted(
            k[len(_MASK_PREFIX):] for k in tensors if k.startswith(_MASK_PREFIX))
        masks = {n: tensors[_MASK_PREFIX + n] for n in order}
        perms = {n: tensors[_PERM_PREFIX + n] for n in manifest.get("permuted_layers", [])}
        return cls(masks=masks, method=manifest["method"], params=manifest.get("params", {}),
                   permutations=perms, certkit_version=manifest.get("certkit_version",
                                                                    "unknown"))
