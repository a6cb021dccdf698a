"""synthetic.runner: determinism across jobs/chunking/backends, resume, kill -9 safety, errors."""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest

from synthetic import runner
from synthetic.registry import Conclusion
from synthetic.runner import ExperimentResult, derive_seed, load_results, run_experiment
from synthetic.store import ResultsStore, config_hash

from . import _dummy_experiments as dummy

NAME = dummy.COIN.name
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _dummies():
    with dummy.registered():
        yield


@pytest.fixture(scope="module")
def reference():
    """Uninterrupted, single-process full run (3 configs x 10 trials) in a private store."""
    with dummy.registered():
        return run_experiment(NAME, progress=False)


def test_run_returns_tidy_trials_summary_and_verdict(reference):
    res = reference
    assert isinstance(res, ExperimentResult) and res.name == NAME and res.passed
    assert isinstance(res.conclusion, Conclusion) and res.conclusion.messages
    t = res.trials
    assert len(t) == 30 and t["config_hash"].nunique() == 3
    assert list(t.columns[:3]) == ["experiment", "config_hash", "seed"]
    assert {"cfg_p", "cfg_n", "cfg_shape", "heads", "x", "even", "count", "tag"} <= set(t.columns)
    assert t["x"].dtype == "float64" and t["count"].dtype == "int64" and t["even"].dtype == bool
    assert not t.duplicated(["config_hash", "seed"]).any()
    assert list(res.summary["n_trials"]) == [10, 10, 10]
    run = res.run
    assert run["status"] == "finished" and run["n_new_trials"] == 30 and run["n_reused_trials"] == 0
    assert run["store"] == ":memory:" and run["quick"] is False and run["params"]["seed"] == 0
    assert run["wall_s"] > 0 and run["versions"]["pandas"] == pd.__version__
    digest = res.to_dict()
    assert digest["passed"] is True and digest["n_trials"] == 30 and len(digest["summary"]) == 3


def test_trial_seeds_are_derived_per_config_and_index(reference):
    h = config_hash({"p": 0.3, "n": 4})
    want = sorted(derive_seed(0, h, j) for j in range(10))
    got = reference.trials.loc[reference.trials["config_hash"] == h, "seed"].tolist()
    assert got == want and all(0 <= s < 2**63 for s in got)
    assert derive_seed(1, h, 0) != derive_seed(0, h, 0) != derive_seed(0, h, 1)


def test_same_seed_same_table_whatever_jobs_or_chunking(reference):
    par = run_experiment(NAME, jobs=2, chunk_size=3, progress=False)  # loky processes
    seq = run_experiment(NAME, jobs=1, chunk_size=7, progress=False)
    pd.testing.assert_frame_equal(par.trials, reference.trials)
    pd.testing.assert_frame_equal(seq.trials, reference.trials)
    pd.testing.assert_frame_equal(par.summary, reference.summary)
    other = run_experiment(NAME, seed=1, progress=False)
    assert not other.trials["seed"].isin(reference.trials["seed"]).any()


@pytest.mark.parametrize("backend", ["threading", "multiprocessing"])
def test_pluggable_joblib_backend(reference, backend):
    # threading stands in for a streaming cluster backend (Dask), multiprocessing for one that
    # only returns lists (Ray): both must give the identical table.
    res = run_experiment(NAME, jobs=2, backend=backend, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(res.trials, reference.trials)
    assert res.run["params"]["backend"] == backend


def test_ambient_parallel_config_is_honoured(reference):
    with joblib.parallel_config(backend="threading"):
        res = run_experiment(NAME, jobs=2, progress=False)
    pd.testing.assert_frame_equal(res.trials, reference.trials)


def test_backend_errors():
    with pytest.raises(ValueError, match=r"backend == 'no-such-backend'.*threading"):
        run_experiment(NAME, backend="no-such-backend", progress=False)
    with pytest.raises(ValueError, match="backend_params given without backend"):
        run_experiment(NAME, backend_params={"x": 1}, progress=False)
    with pytest.raises(TypeError, match="backend"):
        run_experiment(NAME, backend=3, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_backend_without_ray_is_a_clear_import_error():
    with pytest.raises(ImportError, match=r"pip install 'ray\[default\]'"):
        run_experiment(NAME, backend="ray", progress=False)


def test_resume_skips_finished_trials(tmp_path, reference):
    db = tmp_path / "mc.sqlite"
    first = run_experiment(NAME, trials=4, store=db, progress=False)
    assert first.run["n_new_trials"] == 12
    full = run_experiment(NAME, store=db, jobs=2, progress=False)
    assert (full.run["n_new_trials"], full.run["n_reused_trials"]) == (18, 12)
    pd.testing.assert_frame_equal(full.trials, reference.trials)
    again = run_experiment(NAME, store=db, progress=False)
    assert (again.run["n_new_trials"], again.run["n_reused_trials"]) == (0, 30)
    pd.testing.assert_frame_equal(again.trials, reference.trials)
    # the smaller run's table is a prefix selection of the same trials, not everything stored
    small = run_experiment(NAME, trials=4, store=db, progress=False)
    pd.testing.assert_frame_equal(small.trials, first.trials)
    with ResultsStore(db) as st:
        assert st.count_trials(NAME) == 30
        assert [r["status"] for r in st.runs(NAME)] == ["finished"] * 4


def test_quick_grid_and_an_open_store_object(reference):
    with ResultsStore(":memory:") as st:
        quick = run_experiment(NAME, quick=True, store=st, progress=False)
        assert len(quick.trials) == 12 and quick.run["quick"] is True
        assert st.count_trials(NAME) == 12  # the caller's store stays open and holds the rows
        full = run_experiment(NAME, trials=6, store=st, progress=False)
        assert full.run["n_reused_trials"] == 12  # quick configs are a subset of the full grid


def test_failed_trial_keeps_committed_chunks_and_marks_run_failed(tmp_path):
    db = tmp_path / "mc.sqlite"
    with pytest.raises(RuntimeError, match="failure injected"):
        run_experiment(dummy.BROKEN.name, chunk_size=1, store=db, progress=False)
    with ResultsStore(db) as st:
        (run,) = st.runs(dummy.BROKEN.name)
        assert run["status"] == "failed"
        done = st.count_trials(dummy.BROKEN.name)
    assert done > 0 and run["n_new_trials"] == done


def test_load_results_rebuilds_the_same_result(tmp_path, reference):
    db = tmp_path / "mc.sqlite"
    with pytest.raises(FileNotFoundError, match="certkit mc run"):
        load_results(NAME, db)
    ran = run_experiment(NAME, store=db, progress=False)
    got = load_results(NAME, db)
    pd.testing.assert_frame_equal(got.trials, ran.trials)
    pd.testing.assert_frame_equal(got.summary, ran.summary)
    assert got.conclusion == ran.conclusion and got.run["run_id"] == ran.run["run_id"]
    sel = load_results(NAME, db, quick=True)
    assert len(sel.trials) == 12
    with pytest.raises(ValueError, match="are not in"):
        load_results(NAME, db, quick=False, trials=11)
    with pytest.raises(ValueError, match="no trials of experiment"):
        load_results(dummy.FAILING.name, db)
    with pytest.raises(ValueError, match="trials given without quick"):
        load_results(NAME, db, trials=3)


def test_progress_bar_goes_to_stderr(capsys):
    run_experiment(NAME, quick=True, trials=2, progress=True)
    err = capsys.readouterr().err
    assert NAME in err and "4/4" in err


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"trials": 0}, ValueError, r"trials == 0, must be >= 1"),
        ({"trials": 2.5}, TypeError, r"trials == 2.5"),
        ({"trials": True}, TypeError, r"trials == True"),
        ({"jobs": 0}, ValueError, r"jobs == 0, must be >= 1"),
        ({"jobs": "2"}, TypeError, r"jobs == '2'"),
        ({"seed": -1}, ValueError, r"seed == -1, must be >= 0"),
        ({"chunk_size": 0}, ValueError, r"chunk_size == 0"),
        ({"quick": "yes"}, TypeError, r"quick == 'yes'"),
        ({"store": 3}, TypeError, r"store == 3"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        run_experiment(NAME, progress=False, **kwargs)


def test_unknown_experiment_lists_valid_names():
    with pytest.raises(ValueError, match=rf"unknown experiment 'nope'; valid names: .*{NAME}"):
        run_experiment("nope")


def test_malformed_trial_output_is_rejected():
    with pytest.raises(TypeError, match=r"'values' == \[1, 2\].*JSON scalars"):
        run_experiment(dummy.BAD_VALUE.name, quick=True, progress=False)
    with pytest.raises(ValueError, match="clash"):
        run_experiment(dummy.BAD_KEY.name, quick=True, progress=False)


def test_reused_trials_from_another_commit_warn(tmp_path):
    if runner.git_commit() == "unknown":
        pytest.skip("not a git checkout")
    db = tmp_path / "mc.sqlite"
    run_experiment(NAME, quick=True, store=db, progress=False)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET git_commit = 'f00d'")
    with pytest.warns(UserWarning, match="reused .* git commit.*f00d"):
        run_experiment(NAME, quick=True, store=db, progress=False)


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    from tests.synthetic import _dummy_experiments as dummy
    from synthetic.runner import run_experiment
    with dummy.registered([dummy.COIN]):
        run_experiment(dummy.COIN.name, trials=20, store=sys.argv[1], jobs=2, chunk_size=2, progress=False)
""")


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path):
    db, total = tmp_path / "mc.sqlite", 60
    reference = run_experiment(NAME, trials=20, progress=False)  # uninterrupted, in memory
    env = dict(os.environ, **{dummy.SLEEP_ENV: "0.1"})  # 60 trials x 0.1 s on 2 workers: ~3 s
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(db)], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _count(db) < 4:
            assert proc.poll() is None, f"run ended before the kill: {proc.communicate()}"
            assert time.monotonic() < deadline, "no trials committed within 60 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the run (its workers are orphaned)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned loky workers (this session only)
        except (ProcessLookupError, PermissionError):
            pass
        proc.stdout.close()
        proc.stderr.close()
    committed = _count(db)
    assert 4 <= committed < total
    with ResultsStore(db) as st:
        assert [r["status"] for r in st.runs(NAME)] == ["running"]  # it never got to finish

    resumed = run_experiment(NAME, trials=20, store=db, progress=False)
    assert resumed.run["n_reused_trials"] == committed
    assert resumed.run["n_new_trials"] == total - committed
    pd.testing.assert_frame_equal(resumed.trials, reference.trials)
    assert not resumed.trials.duplicated(["config_hash", "seed"]).any()
    with ResultsStore(db) as st:
        assert st.count_trials(NAME) == total
        assert [r["status"] for r in st.runs(NAME)] == ["running", "finished"]

