"""``certkit mc`` (a certkit.cli plugin) and ``python -m synthetic``, in-process with tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

import certkit.cli
from certkit.cli import build_parser, main
from synthetic import cli as mc_cli

from . import _dummy_experiments as dummy

NAME = dummy.COIN.name


@pytest.fixture(autouse=True)
def _dummies():
    with dummy.registered():
        yield


def test_mc_plugin_is_discovered():
    text = build_parser().format_help()
    assert "mc" in text and "demo" in text and "mp-fit" in text


def test_broken_plugin_warns_and_other_commands_still_work(monkeypatch, capsys):
    class BrokenEntryPoint:
        name, value = "broken", "no_such_module:add_parser"

        def load(self):
            raise ImportError("No module named 'no_such_module'")

    monkeypatch.setattr(certkit.cli, "_plugin_entry_points", lambda: [BrokenEntryPoint()])
    parser = build_parser()
    err = capsys.readouterr().err
    assert "warning: CLI plugin 'broken'" in err and "no_such_module" in err
    assert parser.parse_args(["mp-fit", "minilm"]).command == "mp-fit"
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0


def test_list_shows_names_results_descriptions(capsys):
    assert main(["mc", "list"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(NAME))
    assert "TEST-Lemma 1" in line and "binomial frequencies match p (test)" in line
    assert out.splitlines()[0].split() == ["name", "results", "description"]


def test_run_writes_outputs_and_show_reads_them_back(tmp_path, capsys):
    db, out = tmp_path / "mc.sqlite", tmp_path / "out"
    assert main(["mc", "run", NAME, "--quick", "--store", str(db), "--out", str(out), "--jobs", "1"]) == 0
    io = capsys.readouterr()
    assert f"{NAME}: PASSED" in io.out and "max |freq - p|" in io.out and "mean_heads" in io.out
    assert "12 trials (12 new, 0 reused" in io.err and "trials/s" in io.err
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 12 and {"config_hash", "seed", "cfg_p", "heads"} <= set(trials.columns)
    assert len(pd.read_csv(out / "summary.csv")) == 2
    result = json.loads((out / "result.json").read_text())
    assert result["passed"] is True and result["experiment"] == NAME and result["n_trials"] == 12
    assert result["result_ids"] == ["TEST-Lemma 1"] and result["run"]["quick"] is True
    assert result["run"]["git_commit"] and "torch" in result["run"]["versions"]
    assert result["run"]["argv"] == sys.argv  # the real command line of the console script

    # resume: nothing new; show: same summary without running
    assert main(["mc", "run", NAME, "--quick", "--store", str(db), "--out", str(out), "-q"]) == 0
    io = capsys.readouterr()
    assert "(0 new, 12 reused" in io.err and "mean_heads" not in io.out and f"{NAME}: PASSED" in io.out
    assert main(["mc", "show", NAME, "--store", str(db), "--out", str(tmp_path / "shown")]) == 0
    assert "mean_heads" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "shown" / "trials.csv"), trials)
    assert main(["mc", "show", NAME, "--store", str(db), "--quick", "--seed", "0"]) == 0
    assert main(["mc", "show", NAME, "--store", str(db), "--full"]) == 1
    assert "are not in" in capsys.readouterr().err


def test_failed_check_exits_3(tmp_path, capsys):
    argv = ["mc", "run", dummy.FAILING.name, "--quick", "--trials", "2", "--store", str(tmp_path / "s.db"),
            "--out", str(tmp_path / "o"), "-q"]
    assert main(argv) == 3
    assert f"{dummy.FAILING.name}: FAILED" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "result.json").read_text())["passed"] is False


def test_backend_option(tmp_path, capsys):
    argv = ["mc", "run", NAME, "--quick", "--trials", "3", "--store", str(tmp_path / "s.db"), "--out",
            str(tmp_path / "o"), "--backend", "threading", "--jobs", "2", "--chunk-size", "2", "-q"]
    assert main(argv) == 0
    run = json.loads((tmp_path / "o" / "result.json").read_text())["run"]
    assert run["params"]["backend"] == "threading" and run["params"]["chunk_size"] == 2


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["mc", "run", "nope", "--quick"], f"unknown experiment 'nope'; valid names: .*{NAME}"),
        (["mc", "run", NAME, "--jobs", "0"], "jobs == 0"),
        (["mc", "run", NAME, "--trials", "0"], "trials == 0"),
        (["mc", "run", NAME, "--seed", "-3"], "seed == -3"),
        (["mc", "run", NAME, "--backend", "nosuch"], "backend == 'nosuch'"),
        (["mc", "run", NAME, "--backend", "threading", "--backend-param", "oops"], "KEY=VALUE"),
        (["mc", "show", NAME, "--trials", "3"], "need --quick or --full"),
        (["mc", "show", NAME, "--store", "missing.sqlite"], "does not exist"),
    ],
)
def test_bad_values_exit_1_with_a_clear_message(argv, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default store/out dirs land in tmp_path
    assert main([*argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("certkit mc: error:")
    assert re.search(pattern, err), err


@pytest.mark.parametrize("argv", [["mc"], ["mc", "run"], ["mc", "run", NAME, "--trials", "x"],
                                  ["mc", "frobnicate"]])
def test_argparse_usage_errors_exit_1_not_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1  # 2 is reserved for "the experiment FAILED"
    assert "usage:" in capsys.readouterr().err


def test_python_m_synthetic_same_commands(tmp_path, capsys):
    assert mc_cli.main(["mc", "list"]) == 0
    assert NAME in capsys.readouterr().out
    argv = ["mc", "run", NAME, "--quick", "--trials", "2", "--store", str(tmp_path / "s.db"), "--out",
            str(tmp_path / "o"), "-q"]
    assert mc_cli.main(argv) == 0
    assert mc_cli.main(["mc", "run", "nope", "-q"]) == 1
    assert "valid names" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        mc_cli.main(["bogus"])
    assert exc.value.code == 1
    done = subprocess.run([sys.executable, "-m", "synthetic", "mc", "run", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "--backend" in done.stdout and "--quick" in done.stdout
