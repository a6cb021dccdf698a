"""Helpers shared by the experiment modules: configuration keys, seeded generators, binomial
summaries (THEORY §2.3 BinomCheck with a Bonferroni-adjusted level)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from certkit.mc import binom_check, clopper_pearson

__all__ = [
    "FAMILY_FALSE_FAILURE",
    "binomial_summary",
    "config_key",
    "config_rng",
    "trial_rng",
    "with_defaults",
]

#: Family-wise false-failure rate of the whole grid (THEORY §2.3: BinomCheck at 99.9%); the
#: per-cell level of the two-sided Clopper–Pearson interval is 1 − FAMILY_FALSE_FAILURE/#cells.
FAMILY_FALSE_FAILURE = 1e-3

def config_key(config: dict) -> str:
    """Canonical JSON of a configuration (the runner hashes the same string)."""
    return json.dumps(config, sort_keys=True)


def config_rng(config: dict, *streams: int) -> np.random.Generator:
    """Generator seeded by the configuration (and optional extra stream ids), never the trial.

    Used for everything that must be independent of the removed component R (inputs v_s,
    L_s, masks, signal): it is a function of the configuration only.
    """
    digest = hashlib.sha256(config_key(config).encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[:8], "little"), *streams])


def trial_rng(config: dict, seed: int) -> np.random.Generator:
    """Generator of one trial: deterministic in (config, seed), independent across cells."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed == {seed!r}, must be a non-negative int")
    digest = hashlib.sha256(config_key(config).encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[8:16], "little")])


def binomial_summary(failures: int, trials: int, delta: float, n_checks: int) -> dict:
    """Coverage, its two-sided Clopper–Pearson interval and BinomCheck's p_lo for one cell.

    The level is Bonferroni-adjusted, 1 − FAMILY_FALSE_FAILURE/n_checks, for both the
    two-sided coverage interval and the one-sided p_lo (THEORY §2.3).
    """
    level = 1.0 - FAMILY_FALSE_FAILURE / max(1, n_checks)
    lo, hi = clopper_pearson(int(failures), int(trials), level)
    bc = binom_check(int(failures), int(trials), float(delta), level=level)
    return {
        "trials": int(trials), "failures": int(failures), "failure_rate": bc.rate,
        "coverage": bc.coverage, "coverage_lo": 1.0 - hi, "coverage_hi": 1.0 - lo,
        "p_lo": bc.p_lo, "level": level,
        "rejected": bool(1.0 - lo < 1.0 - float(delta)),
    }


def with_defaults(config: dict, defaults: dict) -> dict:
    """``{**defaults, **config}`` after rejecting non-dicts and unknown keys (listing valid ones)."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(defaults)}")
    return {**defaults, **config}
