"""Registry of Monte Carlo experiments (timm ``@register_model`` style).

An experiment is *data*: a grid of configurations, a pure trial function, a summariser and a
checker. The runner (:mod:`synthetic.runner`) executes ``trial(config, seed)`` for every
(configuration, seed) pair, stores each row in the results store, and then calls
``summarize`` and ``check`` on the tidy table of all trials.

Contract
--------
* ``grid(quick: bool) -> list[dict]`` — JSON-serialisable configurations (the config hash is
  computed from ``json.dumps(config, sort_keys=True)``).
* ``trial(config: dict, seed: int) -> dict`` — ONE independent trial, deterministic given
  ``(config, seed)``, returning a flat dict of JSON scalars (floats, ints, bools, str). It must
  not depend on global state; it builds its own ``numpy.random.default_rng(seed)`` /
  ``torch.Generator``.
* ``summarize(trials: pandas.DataFrame) -> pandas.DataFrame`` — one row per configuration
  (group by the config columns, which the runner adds as ``cfg_<key>`` columns).
* ``check(summary: pandas.DataFrame) -> Conclusion`` — the experiment's verdict on the theory
  (e.g. coverage not rejected, slope negative). ``Conclusion.passed`` False means the
  experiment FAILS.
* ``n_trials(quick: bool) -> int`` — default number of seeds per configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Conclusion", "Experiment", "get_experiment", "list_experiments", "register"]


@dataclass(frozen=True)
class Conclusion:
    """Verdict of an experiment: ``passed`` and a human-readable ``message`` per check."""

    passed: bool
    messages: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class Experiment:
    """A registered Monte Carlo experiment (see the module docstring for the contract)."""

    name: str
    description: str
    results: tuple[str, ...]
    grid: Callable[[bool], list[dict]]
    trial: Callable[[dict, int], dict]
    summarize: Callable
    check: Callable
    n_trials: Callable[[bool], int]
    tags: tuple[str, ...] = field(default=())


_EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    """Add ``exp`` to the registry (its name must be new)."""
    if exp.name in _EXPERIMENTS:
        raise ValueError(f"experiment {exp.name!r} is already registered")
    _EXPERIMENTS[exp.name] = exp
    return exp


def _load_all() -> None:
    from . import experiments  # noqa: F401  (importing registers every experiment)


def list_experiments() -> list[str]:
    """Sorted names of all registered experiments."""
    _load_all()
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; unknown names raise ValueError listing valid ones."""
    _load_all()
    try:
        return _EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; valid names: {', '.join(sorted(_EXPERIMENTS))}"
        ) from None
