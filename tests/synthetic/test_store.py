"""synthetic.store: SQLite round trip, INSERT OR IGNORE, run records, deterministic frames."""

from __future__ import annotations

import re
import sqlite3

import pandas as pd
import pytest

from synthetic.store import DEFAULT_STORE_PATH, ResultsStore, TrialRow, config_hash, git_commit

CFG_A = {"p": 0.3, "n": 4}
CFG_B = {"shape": [2, 3], "p": 0.7, "n": 4}


def _rows(exp="e"):
    return [TrialRow(exp, CFG_B, 5, {"x": 0.25, "k": 3, "ok": True, "tag": "b"}),
            TrialRow(exp, CFG_A, 9, {"x": -1.5, "k": 1, "ok": False, "tag": "a"}),
            TrialRow(exp, CFG_A, 2, {"x": 1e-300, "k": 0, "ok": True, "tag": "a"})]


def test_config_hash_is_order_and_container_independent():
    h = config_hash(CFG_B)
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert h == config_hash({"n": 4, "p": 0.7, "shape": (2, 3)})
    assert h != config_hash(CFG_A)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        config_hash({"f": object()})
    with pytest.raises(TypeError, match="must be a dict"):
        config_hash([1, 2])


def test_round_trip_frame_is_tidy_and_sorted(tmp_path):
    path = tmp_path / "sub" / "mc.sqlite"
    with ResultsStore(path) as store:
        assert store.add_trials(_rows()) == 3
        frame = store.trials_frame("e")
    assert list(frame.columns) == ["experiment", "config_hash", "seed", "cfg_n", "cfg_p", "cfg_shape",
                                   "x", "k", "ok", "tag"]
    keys = list(zip(frame["config_hash"], frame["seed"], strict=True))
    assert keys == sorted(keys) and len(keys) == 3
    row = frame.set_index("seed").loc[5]
    assert row["cfg_shape"] == (2, 3) and row["x"] == 0.25 and row["tag"] == "b"
    assert frame["seed"].dtype == "int64" and frame["k"].dtype == "int64" and frame["ok"].dtype == bool
    assert frame.set_index("seed").loc[2, "x"] == 1e-300  # floats survive JSON exactly
    assert pd.isna(frame.set_index("seed").loc[9, "cfg_shape"])  # key absent from that config

    with ResultsStore(path) as again:  # a new connection reads the identical frame
        pd.testing.assert_frame_equal(again.trials_frame("e"), frame)
        sub = again.trials_frame("e", keys=[(config_hash(CFG_A), 9)])
        assert list(sub["seed"]) == [9]
        assert again.experiments() == ["e"]
        assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reinsert_is_ignored_and_first_result_kept():
    with ResultsStore(":memory:") as store:
        assert store.add_trials(_rows()) == 3
        changed = [TrialRow("e", CFG_A, 9, {"x": 99.0, "k": 9, "ok": True, "tag": "z"})]
        assert store.add_trials(changed + _rows()) == 0
        assert store.count_trials("e") == 3 and store.count_trials() == 3
        assert store.trials_frame("e").set_index("seed").loc[9, "x"] == -1.5
        assert store.done_seeds("e", config_hash(CFG_A)) == {2, 9}
        assert store.done_seeds("other", config_hash(CFG_A)) == set()
        assert store.add_trials([]) == 0


def test_experiments_are_separate_and_empty_frame_has_key_columns():
    with ResultsStore(":memory:") as store:
        store.add_trials(_rows("e1") + _rows("e2")[:1])
        assert store.count_trials("e1") == 3 and store.count_trials("e2") == 1
        empty = store.trials_frame("nothing")
    assert empty.empty and list(empty.columns) == ["experiment", "config_hash", "seed"]


def test_runs_record_versions_commit_argv_and_status():
    with ResultsStore(":memory:") as store:
        rid = store.start_run("e", quick=True, params={"seed": 3}, argv=["certkit", "mc", "run", "e"])
        run = store.get_run(rid)
        assert run["status"] == "running" and run["finished_at"] is None and run["quick"] is True
        store.finish_run(rid, status="finished", n_new_trials=4, n_reused_trials=1)
        (run,) = store.runs("e")
    assert run["run_id"] == rid and run["status"] == "finished" and run["finished_at"]
    assert run["params"] == {"seed": 3} and run["argv"] == ["certkit", "mc", "run", "e"]
    assert (run["n_new_trials"], run["n_reused_trials"]) == (4, 1)
    assert {"certkit", "numpy", "torch", "scipy", "pandas", "python"} <= set(run["versions"])
    assert run["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", run["git_commit"])
    with ResultsStore(":memory:") as store, pytest.raises(ValueError, match="run_id == 7"):
        store.get_run(7)


def test_trial_rows_link_to_their_run(tmp_path):
    with ResultsStore(tmp_path / "s.sqlite") as store:
        rid = store.start_run("e", quick=False)
        store.add_trials(_rows(), run_id=rid)
        assert store.run_commits("e") == {store.get_run(rid)["git_commit"]}
        n = store.conn.execute("SELECT COUNT(*) FROM trials WHERE run_id = ?", (rid,)).fetchone()[0]
    assert n == 3


def test_unique_constraint_in_schema(tmp_path):
    with ResultsStore(tmp_path / "s.sqlite") as store:
        store.add_trials(_rows()[:1])
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("INSERT INTO trials SELECT * FROM trials")


def test_result_key_clash_and_bad_rows_and_paths(tmp_path):
    with ResultsStore(":memory:") as store:
        store.add_trials([TrialRow("e", CFG_A, 1, {"seed": 1, "cfg_p": 2})])
        with pytest.raises(ValueError, match=r"clash.*rename"):
            store.trials_frame("e")
        with pytest.raises(TypeError, match="TrialRow"):
            store.add_trials([("e", CFG_A, 1, {})])
    with pytest.raises(ValueError, match="is a directory"):
        ResultsStore(tmp_path)
    store = ResultsStore(":memory:")
    store.close()
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.count_trials()
    assert str(DEFAULT_STORE_PATH) == "runs/mc.sqlite"


def test_git_commit_outside_a_checkout_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
