"""Property-suite kit for certkit users (needs the ``[testing]`` extra: hypothesis).

* :mod:`certkit.testing.strategies` — hypothesis strategies producing RandNet MLPs, weight
  matrices, masks and complete certification problems (THEORY §2.2).
* :mod:`certkit.testing.checks` — assertion helpers for certificates and Lipschitz bounds.

Importing :mod:`certkit` never imports this package (hypothesis stays optional).
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "certkit.testing needs hypothesis; install it with: pip install 'certkit[testing]'"
    ) from exc

from .checks import (
    LipschitzSoundnessReport,
    LipschitzViolation,
    assert_certificate_holds,
    assert_lipschitz_sound,
    check_lipschitz_sound,
)
from .strategies import (
    CertificationProblem,
    SpikedMatrix,
    certification_problems,
    disjoint_splits,
    mask_splits,
    masks,
    mlps,
    nm_masks,
    spiked_matrices,
    weight_matrices,
)

__all__ = [
    "CertificationProblem",
    "LipschitzSoundnessReport",
    "LipschitzViolation",
    "SpikedMatrix",
    "assert_certificate_holds",
    "assert_lipschitz_sound",
    "certification_problems",
    "check_lipschitz_sound",
    "disjoint_splits",
    "mask_splits",
    "masks",
    "mlps",
    "nm_masks",
    "spiked_matrices",
    "weight_matrices",
]
