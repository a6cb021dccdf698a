"""Results store: every Monte Carlo trial is one row of an embedded SQLite database.

One file (default :data:`DEFAULT_STORE_PATH`, ``./runs/mc.sqlite``) holds two tables:

``trials``
    one row per trial, keyed by ``(experiment, config_hash, seed)`` with a UNIQUE constraint;
    columns ``experiment, config_hash, config_json, seed, result_json, created_at, run_id``.
    Rows are written with ``INSERT OR IGNORE``, so re-running a trial never duplicates it.
``runs``
    one row per call of :func:`synthetic.runner.run_experiment`: ``run_id, experiment,
    started_at, finished_at, status, quick, params_json, versions_json`` (certkit, numpy,
    torch, scipy, pandas, joblib, python), ``git_commit`` (``git rev-parse HEAD`` of the source
    tree, ``"unknown"`` outside a git checkout), ``argv_json`` and the trial counts.

The database runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives the
writing process being killed (even ``kill -9``); only an OS crash or power loss can drop the
last few batches. Several processes may append to the same file (SQLite serialises writers;
each waits up to :data:`BUSY_TIMEOUT_S`).

``config_hash(config)`` is the first 16 hex digits of the sha256 of
``json.dumps(config, sort_keys=True)``, so it does not depend on key order or on tuple vs list.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEFAULT_STORE_PATH",
    "RESERVED_COLUMNS",
    "ResultsStore",
    "TrialRow",
    "config_hash",
    "git_commit",
    "package_versions",
]

#: Default location of the store, relative to the working directory (``certkit mc --store``).
DEFAULT_STORE_PATH = Path("runs") / "mc.sqlite"
#: Seconds a writer waits for another process's transaction before failing ("database is locked").
BUSY_TIMEOUT_S = 60.0
#: Packages whose versions every run records (issue 3: "record package versions").
VERSIONED_PACKAGES = ("certkit", "numpy", "torch", "scipy", "pandas", "joblib")
#: Columns of :meth:`ResultsStore.trials_frame` that are not configuration or result keys.
RESERVED_COLUMNS = ("experiment", "config_hash", "seed")
#: Prefix of the configuration columns of :meth:`ResultsStore.trials_frame`.
CONFIG_PREFIX = "cfg_"
#: Length (hex digits) of a configuration hash.
CONFIG_HASH_LEN = 16
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    experiment  TEXT    NOT NULL,
    config_hash TEXT    NOT NULL,
    config_json TEXT    NOT NULL,
    seed        INTEGER NOT NULL,
    result_json TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    run_id      INTEGER,
    UNIQUE (experiment, config_hash, seed)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment      TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    status          TEXT    NOT NULL,
    quick           INTEGER NOT NULL,
    params_json     TEXT    NOT NULL,
    versions_json   TEXT    NOT NULL,
    git_commit      TEXT    NOT NULL,
    argv_json       TEXT    NOT NULL,
    n_new_trials    INTEGER,
    n_reused_trials INTEGER
);
"""


def _canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)


def config_hash(config: Mapping) -> str:
    """First 16 hex digits of sha256(``json.dumps(config, sort_keys=True)``).

    Raises TypeError (naming the offending value) when ``config`` is not JSON-serialisable.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config == {config!r} is a {type(config).__name__}, must be a dict")
    try:
        text = _canonical_json(config)
    except TypeError as exc:
        raise TypeError(f"config {config!r} is not JSON-serialisable: {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:CONFIG_HASH_LEN]


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`VERSIONED_PACKAGES` (``"not installed"`` if absent) and Python."""
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    return out


def git_commit(path: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding ``path`` (default: this package), else "unknown".

    A ``+dirty`` suffix marks uncommitted changes to tracked files, which the commit alone
    does not capture.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else (head or "unknown")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One finished trial: ``result = trial(config, seed)`` of ``experiment``."""

    experiment: str
    config: Mapping
    seed: int
    result: Mapping

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


class ResultsStore:
    """SQLite store of Monte Carlo trials and runs (see the module docstring).

    Parameters
    ----------
    path
        Database file, created with its parent directories if missing; ``":memory:"`` gives a
        private in-memory store that disappears with the object.

    Use as a context manager or call :meth:`close`. A store object belongs to the thread that
    created it (the runner writes from the parent process's main thread only).

    Examples
    --------
    >>> with ResultsStore(":memory:") as store:
    ...     store.add_trials([TrialRow("demo", {"n": 4}, 7, {"x": 0.5})])
    ...     store.done_seeds("demo", config_hash({"n": 4}))
    1
    {7}
    """

    def __init__(self, path: str | Path = DEFAULT_STORE_PATH):
        self.path = str(path) if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            if self.path.is_dir():
                raise ValueError(f"store path == {str(self.path)!r} is a directory, must be a file "
                                 "(e.g. runs/mc.sqlite)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            self._conn.close()
            raise ValueError(f"store {str(self.path)!r} has schema version {version}, this code reads "
                             f"version {_SCHEMA_VERSION}; use a new --store file")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"{self!r} is closed")
        return self._conn

    # ------------------------------------------------------------------ trials

    def add_trials(self, rows: Iterable[TrialRow], *, run_id: int | None = None) -> int:
        """Insert ``rows`` in one transaction; rows already stored are ignored.

        Returns the number of rows actually inserted.
        """
        created = _now()
        params = []
        for row in rows:
            if not isinstance(row, TrialRow):
                raise TypeError(f"rows must hold TrialRow objects, got {type(row).__name__}")
            params.append((row.experiment, row.config_hash, _canonical_json(row.config), int(row.seed),
                           json.dumps(dict(row.result), allow_nan=True), created, run_id))
        if not params:
            return 0
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO trials (experiment, config_hash, config_json, seed, result_json, "
                "created_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)", params)
            return self.conn.total_changes - before

    def done_seeds(self, experiment: str, config_hash: str) -> set[int]:
        """Seeds of the stored trials of ``experiment`` at configuration ``config_hash``."""
        cur = self.conn.execute("SELECT seed FROM trials WHERE experiment = ? AND config_hash = ?",
                                (experiment, config_hash))
        return {s for (s,) in cur}

    def count_trials(self, experiment: str | None = None) -> int:
        """Number of stored trials (of ``experiment``, or of all experiments)."""
        if experiment is None:
            return self.conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM trials WHERE experiment = ?",
                                 (experiment,)).fetchone()[0]

    def experiments(self) -> list[str]:
        """Sorted names of the experiments with at least one stored trial."""
        return [e for (e,) in self.conn.execute("SELECT DISTINCT experiment FROM trials ORDER BY 1")]

    def trials_frame(self, experiment: str, *, keys: Iterable[tuple[str, int]] | None = None):
        """The stored trials of ``experiment`` as a tidy :class:`pandas.DataFrame`.

        Columns: ``experiment, config_hash, seed``, then ``cfg_<key>`` for every configuration key
        (sorted; list values become tuples so they can be grouped on), then the result keys in
        the order the trial returned them. Rows are sorted by ``(config_hash, seed)``, so the
        frame depends only on *which* trials are stored, not on how or in which order they ran.
        ``keys`` restricts the frame to the given ``(config_hash, seed)`` pairs.
        """
        import pandas as pd

        wanted = None if keys is None else {(h, int(s)) for h, s in keys}
        cur = self.conn.execute(
            "SELECT config_hash, config_json, seed, result_json FROM trials WHERE experiment = ? "
            "ORDER BY config_hash, seed", (experiment,))
        configs: dict[str, dict] = {}
        records = []
        result_cols: dict[str, None] = {}
        for h, cfg_json, seed, res_json in cur:
            if wanted is not None and (h, seed) not in wanted:
                continue
            if h not in configs:
                configs[h] = {k: _hashable(v) for k, v in json.loads(cfg_json).items()}
            result = json.loads(res_json)
            result_cols.update(dict.fromkeys(result))
            records.append((h, seed, result))
        cfg_keys = sorted({k for cfg in configs.values() for k in cfg})
        clash = [k for k in result_cols if k in RESERVED_COLUMNS or k.startswith(CONFIG_PREFIX)]
        if clash:
            raise ValueError(f"result keys {clash} of experiment {experiment!r} clash with the table's own "
                             f"columns {list(RESERVED_COLUMNS)} / '{CONFIG_PREFIX}*'; rename them")
        columns: dict[str, list] = {"experiment": [experiment] * len(records),
                                    "config_hash": [h for h, _, _ in records],
                                    "seed": [s for _, s, _ in records]}
        for k in cfg_keys:
            columns[CONFIG_PREFIX + k] = [configs[h].get(k) for h, _, _ in records]
        for k in result_cols:
            columns[k] = [res.get(k) for _, _, res in records]
        frame = pd.DataFrame(columns)
        frame["seed"] = frame["seed"].astype("int64")
        return frame

    # ------------------------------------------------------------------ runs

    def start_run(self, experiment: str, *, quick: bool, params: Mapping | None = None,
                  argv: Iterable[str] | None = None) -> int:
        """Record the start of a run (versions and git commit are captured here); returns its id."""
        argv = list(sys.argv if argv is None else argv)
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (experiment, started_at, status, quick, params_json, versions_json, "
                "git_commit, argv_json) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (experiment, _now(), int(bool(quick)), _canonical_json(dict(params or {})),
                 _canonical_json(package_versions()), git_commit(), json.dumps([str(a) for a in argv])))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, status: str, n_new_trials: int, n_reused_trials: int) -> None:
        """Record the end of run ``run_id`` (status 'finished', 'interrupted' or 'failed')."""
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, n_new_trials = ?, n_reused_trials = ? "
                "WHERE run_id = ?", (_now(), status, int(n_new_trials), int(n_reused_trials), int(run_id)))

    def runs(self, experiment: str | None = None) -> list[dict]:
        """Recorded runs (of ``experiment``, or all), oldest first, as plain dicts."""
        sql = "SELECT * FROM runs"
        args: tuple = ()
        if experiment is not None:
            sql += " WHERE experiment = ?"
            args = (experiment,)
        cur = self.conn.execute(sql + " ORDER BY run_id", args)
        names = [d[0] for d in cur.description]
        return [_run_dict(dict(zip(names, row, strict=True))) for row in cur]

    def get_run(self, run_id: int) -> dict:
        """The run ``run_id`` as a dict (ValueError if there is none)."""
        cur = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (int(run_id),))
        row = cur.fetchone()
        if row is None:
            raise ValueError(f"run_id == {run_id!r} is not in {self!r}")
        return _run_dict(dict(zip([d[0] for d in cur.description], row, strict=True)))

    def run_commits(self, experiment: str) -> set[str]:
        """Git commits of the runs that produced the stored trials of ``experiment``."""
        cur = self.conn.execute(
            "SELECT DISTINCT r.git_commit FROM trials t JOIN runs r ON t.run_id = r.run_id "
            "WHERE t.experiment = ?", (experiment,))
        return {c for (c,) in cur}


def _run_dict(row: dict) -> dict:
    out = {k: v for k, v in row.items() if not k.endswith("_json")}
    out["quick"] = bool(out["quick"])
    out["params"] = json.loads(row["params_json"])
    out["versions"] = json.loads(row["versions_json"])
    out["argv"] = json.loads(row["argv_json"])
    return out


def _hashable(value):
    """JSON lists (tuples in the grid) become tuples so configuration columns can be grouped on."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
