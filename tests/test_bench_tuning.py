"""`python -m bench.tuning`: each speed choice in a process of its own, timed end to end, and what to set."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.tuning import Result, combine, spread, table


def result(tuning: str, fit_seconds: float) -> Result:
    return Result(tuning, setup=0.5, epochs=[3.0, 1.0, 1.2], images_per_second=100.0, fit_seconds=fit_seconds)


def test_the_combination_takes_the_best_choice_of_each_kind_that_beat_the_defaults_by_more_than_the_noise() -> None:
    results: dict[str, Result | str] = {
        "defaults": result("defaults", 10.0),
        "upscale_once=1": result("upscale_once=1", 9.0),  # 11 % better: taken
        "conv1_channels=4": result("conv1_channels=4", 9.5),
        "conv1_channels=8": result("conv1_channels=8", 9.2),  # the better of the two paddings
        "eval_batch=512": result("eval_batch=512", 9.9),  # 1 %: within the noise
        "compile=default": "ran past 100 s",
        "cudnn_benchmark=off": result("cudnn_benchmark=off", 12.0),  # slower
    }
    chosen = combine(results, noise=0.02)
    assert chosen is not None
    assert chosen.describe() == "upscale_once=1,conv1_channels=8"
    within_noise = {name: results[name] for name in ("defaults", "eval_batch=512")}
    assert combine(within_noise, 0.02) is None
    assert combine({"upscale_once=1": result("upscale_once=1", 1.0)}, 0.02) is None  # nothing to compare with
    # The defaults' own runs set the noise when they differ by more than the floor: then 11 % is not enough.
    assert spread([result("defaults", 10.0), result("defaults", 11.5)]) == pytest.approx(0.15)
    assert spread([result("defaults", 10.0)]) == 0.0
    assert combine(results, noise=spread([result("defaults", 10.0), result("defaults", 11.5)])) is None

    shown = table(results, results["defaults"])  # type: ignore[arg-type]
    assert "| upscale_once=1 | 0.50 | 3.00 | 1.10 | 2.73× | 100 | 1.000× | 9.00 | 1.111× |" in shown
    assert "| compile=default | ran past 100 s |" in shown


@pytest.mark.slow
def test_a_sweep_runs_each_candidate_in_its_own_process_and_says_what_to_set(tmp_path: Path) -> None:
    out = tmp_path / "tuning.json"
    command = [
        *(sys.executable, "-m", "bench.tuning", "--device", "cpu", "--precision", "fp32", "--epochs", "2"),
        *("--batch-size", "8", "--image-size", "63", "--train-samples", "16", "--test-samples", "8"),
        *("--candidates", "defaults", "eval_batch=3", "conv1_channels=5", "--out", str(out)),
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert refused.returncode != 0 and "conv1_channels" in refused.stderr  # a typo stops it before it starts
    assert not out.exists()

    command[command.index("conv1_channels=5")] = "upscale_once=1"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 epochs on 16 + 8 synthetic images" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "tuning" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| defaults", "| eval_batch=3", "| upscale_once=1"]
    assert "ENGINE_TUNING to set:" in done.stdout
    assert "The defaults ran 2 times" in done.stdout  # first and last: their spread is the noise
    saved = json.loads(out.read_text())
    assert set(saved["results"]) >= {"defaults", "eval_batch=3", "upscale_once=1"}
    for name in ("defaults", "eval_batch=3", "upscale_once=1"):
        run = saved["results"][name]
        assert run["tuning"] == name
        assert len(run["epochs"]) == 2 and all(seconds > 0 for seconds in run["epochs"])
        assert run["fit_seconds"] >= sum(run["epochs"])
        assert run["images_per_second"] > 0
    assert saved["chosen"] is None or isinstance(saved["chosen"], str)
