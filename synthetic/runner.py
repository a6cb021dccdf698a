"""Run registered Monte Carlo experiments into a resumable results store.

:func:`run_experiment` executes ``trial(config, seed)`` for every configuration of an
experiment's grid and every trial seed, in parallel through joblib, writing each finished chunk
of trials to a :class:`~synthetic.store.ResultsStore` as soon as it arrives. It then reads the
trials back from the store, so the returned table is exactly what :func:`load_results` gives
later, and calls the experiment's ``summarize`` and ``check``.

Guarantees
----------
* **Deterministic.** Trial ``j`` of the configuration with hash ``h`` always gets the seed
  :func:`derive_seed(seed, h, j) <derive_seed>`, and the table is sorted by
  ``(config_hash, seed)``: the same ``seed`` gives the identical table whatever ``jobs``,
  ``chunk_size``, backend or number of interruptions.
* **Resumable.** Trials already in the store are skipped; a re-run never duplicates a row.
* **Kill-safe.** Workers never touch the database: the parent process commits every finished
  chunk in its own transaction, so killing the run (Ctrl-C, ``kill -9``) loses at most the
  chunks in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import pandas as pd
from tqdm import tqdm

from .registry import Conclusion, Experiment, get_experiment
from .store import ResultsStore, TrialRow, config_hash, git_commit

__all__ = ["ExperimentResult", "derive_seed", "load_results", "run_experiment"]

#: Chunks per worker the automatic chunk size aims at (load balancing vs. per-task overhead).
CHUNKS_PER_WORKER = 4
#: Largest automatic chunk: bounds the trials lost to a kill and the latency of the progress bar.
MAX_CHUNK_SIZE = 256
#: Trial seeds are 63-bit so they fit SQLite's signed INTEGER and every RNG seeding API.
_SEED_BITS = 63
_JSON_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class ExperimentResult:
    """Outcome of an experiment: its trials, their summary and the verdict on the theory.

    Attributes
    ----------
    name
        Registered experiment name.
    trials
        One row per trial (``experiment, config_hash, seed, cfg_<key>..., <result keys>``),
        sorted by ``(config_hash, seed)``.
    summary
        ``experiment.summarize(trials)``: one row per configuration.
    conclusion
        ``experiment.check(summary)``; ``conclusion.passed`` False means the experiment FAILS.
    run
        Metadata of the run that produced the table (run id, start/finish times, quick flag,
        parameters, package versions, git commit, argv, new/reused trial counts, wall time,
        store path). For :func:`load_results` it describes the latest recorded run.
    """

    name: str
    trials: pd.DataFrame
    summary: pd.DataFrame
    conclusion: Conclusion
    run: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.conclusion.passed)

    def to_dict(self) -> dict:
        """JSON-serialisable digest: verdict, counts, run metadata and the summary rows."""
        return {
            "experiment": self.name,
            "passed": self.passed,
            "messages": list(self.conclusion.messages),
            "n_trials": int(len(self.trials)),
            "n_configs": int(self.trials["config_hash"].nunique()) if len(self.trials) else 0,
            "run": self.run,
            "summary": _records(self.summary),
        }


def derive_seed(seed: int, config_hash: str, index: int) -> int:
    """Seed of trial ``index`` of the configuration ``config_hash`` in a run with base ``seed``.

    The first 63 bits of sha256(``f"{seed}:{config_hash}:{index}"``): independent of the grid
    order, of ``jobs`` and of chunking, so a configuration keeps its trials when the grid grows.
    """
    digest = hashlib.sha256(f"{seed}:{config_hash}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _SEED_BITS)


# ---------------------------------------------------------------------------- validation


def _check_int(value, name: str, *, min_val: int | None = None, allow_none: bool = False,
               hint: str = "") -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} == {value!r} is a {type(value).__name__}, must be an integer{hint}")
    value = int(value)
    if min_val is not None and value < min_val:
        raise ValueError(f"{name} == {value}, must be >= {min_val}{hint}")
    return value


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} == {value!r} is a {type(value).__name__}, must be True or False")
    return value


def _check_jobs(jobs) -> int:
    jobs = _check_int(jobs, "jobs")
    if jobs == 0:
        raise ValueError("jobs == 0, must be >= 1 (worker count) or negative (joblib convention: "
                         "-1 = all cores, -2 = all but one)")
    return jobs


@dataclass(frozen=True)
class _PlannedConfig:
    config: dict
    config_hash: str
    seeds: tuple[int, ...]


def _plan(exp: Experiment, quick: bool, trials: int | None, seed: int) -> list[_PlannedConfig]:
    """The (configuration, trial seeds) pairs a run of ``exp`` covers."""
    grid = exp.grid(quick)
    if not isinstance(grid, Sequence) or isinstance(grid, str) or not grid:
        raise ValueError(f"experiment {exp.name!r}: grid(quick={quick}) returned {grid!r}, "
                         "must be a non-empty list of dicts")
    n = trials if trials is not None else exp.n_trials(quick)
    n = _check_int(n, f"n_trials(quick={quick}) of experiment {exp.name!r}", min_val=1)
    plan, seen = [], {}
    for i, config in enumerate(grid):
        if not isinstance(config, Mapping):
            raise TypeError(f"experiment {exp.name!r}: grid entry {i} == {config!r} must be a dict")
        h = config_hash(config)
        if h in seen:
            raise ValueError(f"experiment {exp.name!r}: grid entries {seen[h]} and {i} are the same "
                             f"configuration {dict(config)!r}")
        seen[h] = i
        seeds = tuple(derive_seed(seed, h, j) for j in range(n))
        if len(set(seeds)) != n:  # pragma: no cover - a 63-bit collision
            raise RuntimeError(f"trial seed collision for configuration {h}; use another seed")
        plan.append(_PlannedConfig(dict(config), h, seeds))
    return plan


# ---------------------------------------------------------------------------- workers


def _normalise_result(result, name: str) -> dict:
    """A trial's dict with numpy scalars turned into Python scalars; TypeError if not flat JSON."""
    if not isinstance(result, Mapping):
        raise TypeError(f"trial of experiment {name!r} returned a {type(result).__name__}, must "
                        "return a flat dict of JSON scalars")
    out = {}
    for key, value in result.items():
        if not isinstance(key, str):
            raise TypeError(f"trial of experiment {name!r} returned key {key!r}; keys must be str")
        if not isinstance(value, _JSON_SCALARS) and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()  # numpy / torch scalar
        if not isinstance(value, _JSON_SCALARS):
            raise TypeError(f"trial of experiment {name!r} returned {key!r} == {value!r} of type "
                            f"{type(value).__name__}; values must be JSON scalars (float, int, bool, "
                            "str or None)")
        out[key] = value
    return out


@contextlib.contextmanager
def _single_threaded():
    """One BLAS and one torch thread while trials run (restored afterwards).

    Trials are small matrix computations and the parallelism comes from ``jobs``: on a 2-core
    machine a 2-thread OpenBLAS made small products ~35x slower under load (spin-waiting
    threads), so every chunk runs single-threaded, in worker processes and in-process alike.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _run_chunk(name: str, trial, tasks: list[tuple[dict, int]]) -> list[TrialRow]:
    """Worker: run the trials of one chunk (no database access here, see the module docstring)."""
    with _single_threaded():
        return [TrialRow(name, config, seed, _normalise_result(trial(dict(config), seed), name))
                for config, seed in tasks]


def _auto_chunk_size(n_pending: int, n_workers: int) -> int:
    target = math.ceil(n_pending / (CHUNKS_PER_WORKER * max(1, n_workers)))
    return max(1, min(MAX_CHUNK_SIZE, target))


def _backend_context(backend, backend_params: Mapping | None, jobs: int):
    """``joblib.parallel_config`` for ``backend`` (None: the ambient/default config)."""
    if backend is None:
        if backend_params:
            raise ValueError("backend_params given without backend; name the joblib backend they configure")
        return contextlib.nullcontext()
    if isinstance(backend, str) and backend == "ray":
        try:
            from ray.util.joblib import register_ray
        except ImportError as exc:
            raise ImportError("backend == 'ray' needs the ray package: pip install 'ray[default]'") from exc
        register_ray()
    try:
        return joblib.parallel_config(backend=backend, n_jobs=jobs, **dict(backend_params or {}))
    except ValueError as exc:
        raise ValueError(f"backend == {backend!r}: {exc} (or 'ray', or any backend registered with "
                         "joblib.register_parallel_backend)") from None


def _execute(exp: Experiment, pending: list[tuple[dict, int]], store: ResultsStore, run_id: int,
             tally: dict, *, jobs: int, backend, backend_params, chunk_size: int | None,
             progress: bool) -> None:
    """Run ``pending`` (config, seed) tasks in chunks; commit each finished chunk.

    ``tally["added"]`` counts the rows committed so far (also when a trial raises).
    """
    with _backend_context(backend, backend_params, jobs):
        n_workers = joblib.effective_n_jobs(jobs)
        size = chunk_size or _auto_chunk_size(len(pending), n_workers)
        chunks = [pending[i:i + size] for i in range(0, len(pending), size)]
        try:
            parallel = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)
            waves = [chunks]
        except ValueError as exc:  # e.g. multiprocessing / ray: results only as a list
            if "does not support return_as" not in str(exc):
                raise
            parallel = joblib.Parallel(n_jobs=jobs, return_as="list", batch_size=1)
            wave = max(1, 2 * n_workers)
            waves = [chunks[i:i + wave] for i in range(0, len(chunks), wave)]
        with tqdm(total=len(pending), desc=exp.name, unit="trial", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for wave in waves:
                outputs = parallel(joblib.delayed(_run_chunk)(exp.name, exp.trial, c) for c in wave)
                try:
                    for rows in outputs:
                        tally["added"] += store.add_trials(rows, run_id=run_id)
                        bar.update(len(rows))
                finally:  # a generator left early (error, Ctrl-C) cancels the chunks not started
                    getattr(outputs, "close", lambda: None)()


# ---------------------------------------------------------------------------- public API


def _open_store(store) -> tuple[ResultsStore, bool]:
    if store is None:
        return ResultsStore(":memory:"), True
    if isinstance(store, ResultsStore):
        return store, False
    if isinstance(store, str | Path):
        return ResultsStore(store), True
    raise TypeError(f"store == {store!r} is a {type(store).__name__}, must be a ResultsStore, a path or None")


def _conclude(exp: Experiment, trials: pd.DataFrame) -> tuple[pd.DataFrame, Conclusion]:
    summary = exp.summarize(trials)
    if not isinstance(summary, pd.DataFrame):
        raise TypeError(f"experiment {exp.name!r}: summarize returned a {type(summary).__name__}, "
                        "must return a pandas DataFrame")
    conclusion = exp.check(summary)
    if not isinstance(conclusion, Conclusion):
        raise TypeError(f"experiment {exp.name!r}: check returned a {type(conclusion).__name__}, "
                        "must return a synthetic.registry.Conclusion")
    return summary, conclusion


def _warn_if_stale(store: ResultsStore, name: str, n_reused: int) -> None:
    current = git_commit()
    older = sorted(c for c in store.run_commits(name) if c not in (current, "unknown"))
    if current != "unknown" and older:
        warnings.warn(f"{n_reused} trials of {name!r} are reused from {store!r}, written at git commit(s) "
                      f"{', '.join(older)}; the code is now at {current}. Use a new store to recompute.",
                      UserWarning, stacklevel=3)


def run_experiment(name: str, *, quick: bool = False, trials: int | None = None, jobs: int = 1,
                   store: ResultsStore | str | Path | None = None, seed: int = 0, progress: bool = True,
                   backend=None, backend_params: Mapping | None = None, chunk_size: int | None = None,
                   argv: Sequence[str] | None = None) -> ExperimentResult:
    """Run (or resume) the registered experiment ``name`` and return its verdict.

    Parameters
    ----------
    name
        A registered experiment (``synthetic.registry.list_experiments()``); unknown names raise
        ValueError listing the valid ones.
    quick
        Use the experiment's quick grid and trial count (seconds; what CI runs).
    trials
        Trials (seeds) per configuration; default ``experiment.n_trials(quick)``.
    jobs
        joblib ``n_jobs``: workers (1 = in this process), or -1 for all cores.
    store
        A :class:`~synthetic.store.ResultsStore` or a database path; trials already in it are
        reused, new ones are committed chunk by chunk. ``None`` uses a private in-memory store
        (nothing persists and nothing is resumed).
    seed
        Base seed (>= 0); trial seeds are :func:`derive_seed` ``(seed, config_hash, j)``.
    progress
        tqdm progress bar over trials on stderr.
    backend, backend_params
        joblib backend name (or instance) and its constructor arguments, applied with
        ``joblib.parallel_config(backend=backend, n_jobs=jobs, **backend_params)``. ``None``
        keeps the ambient joblib configuration, by default local ``loky`` processes. Any
        registered joblib backend plugs in without code changes; for a cluster::

            from dask.distributed import Client          # pip install dask distributed
            client = Client("tcp://scheduler:8786")      # or backend_params={"scheduler_host": ...}
            run_experiment("mp-law", backend="dask", jobs=-1, store="runs/mc.sqlite")

            run_experiment("mp-law", backend="ray", jobs=-1)  # pip install ray; RAY_ADDRESS=...

        (``"ray"`` is registered here via ``ray.util.joblib.register_ray``.) Wrapping the call in
        ``with joblib.parallel_config(backend=...)`` works too. Backends that cannot stream
        results (``multiprocessing``, ``ray``) are fed in waves of ``2 * workers`` chunks, so a
        kill loses at most one wave.
    chunk_size
        Trials per dispatched task; default ``ceil(pending / (4 * workers))`` clipped to
        [1, 256]. It changes speed and what a kill can lose, never the results.
    argv
        Command line recorded with the run (default ``sys.argv``).

    Returns
    -------
    ExperimentResult
        ``trials`` holds exactly the requested (configuration, seed) pairs, read back from the
        store; the run (versions, git commit, argv, timings) is recorded in ``store.runs()``.

    Raises
    ------
    ValueError, TypeError
        Unknown experiment, invalid argument (message names it), malformed grid or trial output.
    """
    exp = get_experiment(name)
    quick = _check_bool(quick, "quick")
    progress = _check_bool(progress, "progress")
    trials = _check_int(trials, "trials", min_val=1, allow_none=True)
    jobs = _check_jobs(jobs)
    seed = _check_int(seed, "seed", min_val=0)
    chunk_size = _check_int(chunk_size, "chunk_size", min_val=1, allow_none=True)
    if backend is not None and not isinstance(backend, str | joblib.parallel.ParallelBackendBase):
        raise TypeError(f"backend == {backend!r} must be a joblib backend name or instance")
    plan = _plan(exp, quick, trials, seed)

    st, own = _open_store(store)
    try:
        pending = []
        for p in plan:
            done = st.done_seeds(name, p.config_hash)
            pending.extend((p.config, s) for s in p.seeds if s not in done)
        n_total = sum(len(p.seeds) for p in plan)
        n_reused = n_total - len(pending)
        if n_reused:
            _warn_if_stale(st, name, n_reused)
        params = {"seed": seed, "trials_per_config": len(plan[0].seeds), "n_configs": len(plan),
                  "jobs": jobs, "backend": None if backend is None else str(backend),
                  "chunk_size": chunk_size}
        run_id = st.start_run(name, quick=quick, params=params, argv=argv)
        status, tally = "failed", {"added": 0}
        t0 = time.perf_counter()
        try:
            if pending:
                _execute(exp, pending, st, run_id, tally, jobs=jobs, backend=backend,
                         backend_params=backend_params, chunk_size=chunk_size, progress=progress)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            st.finish_run(run_id, status=status, n_new_trials=tally["added"], n_reused_trials=n_reused)
        wall = time.perf_counter() - t0
        added = tally["added"]

        keys = [(p.config_hash, s) for p in plan for s in p.seeds]
        frame = st.trials_frame(name, keys=keys)
        if len(frame) != n_total:  # pragma: no cover - store modified concurrently
            raise RuntimeError(f"store holds {len(frame)} of the {n_total} trials just run")
        summary, conclusion = _conclude(exp, frame)
        run = st.get_run(run_id)
        run.update(store=str(st.path), wall_s=wall, trials_per_s=(added / wall) if wall > 0 else None)
        return ExperimentResult(name, frame, summary, conclusion, run)
    finally:
        if own:
            st.close()


def load_results(name: str, store: ResultsStore | str | Path, *, quick: bool | None = None,
                 trials: int | None = None, seed: int = 0) -> ExperimentResult:
    """Rebuild the summary and verdict of ``name`` from ``store`` without running anything.

    With ``quick=None`` (default) every stored trial of the experiment is used. Passing
    ``quick`` (and optionally ``trials``, ``seed``) selects exactly the trials that
    :func:`run_experiment` with the same arguments covers; ValueError if some are missing.
    The ``run`` metadata is that of the latest recorded run of ``name``.
    """
    exp = get_experiment(name)
    if isinstance(store, str | Path) and not Path(store).is_file():
        raise FileNotFoundError(f"results store {str(store)!r} does not exist; run "
                                f"`certkit mc run {name} --store {store}` first")
    st, own = _open_store(store)
    try:
        if quick is None:
            if trials is not None:
                raise ValueError("trials given without quick; pass quick=True/False to select a run")
            frame = st.trials_frame(name)
        else:
            quick = _check_bool(quick, "quick")
            trials = _check_int(trials, "trials", min_val=1, allow_none=True)
            seed = _check_int(seed, "seed", min_val=0)
            keys = [(p.config_hash, s) for p in _plan(exp, quick, trials, seed) for s in p.seeds]
            frame = st.trials_frame(name, keys=keys)
            if len(frame) != len(keys):
                raise ValueError(f"{len(keys) - len(frame)} of the {len(keys)} trials of {name!r} "
                                 f"(quick={quick}, seed={seed}) are not in {st!r}; run them first")
        if frame.empty:
            raise ValueError(f"{st!r} holds no trials of experiment {name!r}; run "
                             f"`certkit mc run {name} --store {st.path}` first")
        summary, conclusion = _conclude(exp, frame)
        runs = st.runs(name)
        run = dict(runs[-1]) if runs else {}
        run["store"] = str(st.path)
        return ExperimentResult(name, frame, summary, conclusion, run)
    finally:
        if own:
            st.close()


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-safe dicts (numpy scalars -> Python, NaN -> None)."""
    import json

    return json.loads(frame.to_json(orient="records", double_precision=15, default_handler=str))
