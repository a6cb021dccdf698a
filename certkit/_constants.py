"""Named numerical tolerances (THEORY.md §0.3)."""

from __future__ import annotations

#: Absolute tolerance of float64 inequality checks, THEORY §0.3.
FLOAT64_ATOL = 1e-10
#: Relative tolerance of float64 inequality checks, THEORY §0.3.
FLOAT64_RTOL = 1e-9
#: Absolute tolerance when a float32 model is audited, THEORY §0.3.
FLOAT32_ATOL = 1e-5
#: Relative tolerance when a float32 model is audited, THEORY §0.3.
FLOAT32_RTOL = 1e-4
