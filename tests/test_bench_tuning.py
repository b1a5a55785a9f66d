"""`python -m bench.tuning`: the sweep's decisions on fixed timings, and its processes (one per candidate) for real."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import tuning
from bench.tuning_sweep import Result, combine, report, spread, sweep, table
from worker.tuning import TuningError


def result(tuning: str, fit_seconds: float) -> Result:
    return Result(tuning, setup=0.5, epochs=[3.0, 1.0, 1.2], images_per_second=100.0, fit_seconds=fit_seconds)


class Machine:
    """Fixed whole-fit seconds per candidate (one per run, the last repeated; a string: it fails so), on a clock
    that each run advances by its seconds; what the sweep asked to run, with the time it allowed, in order."""

    def __init__(self, seconds: dict[str, list[float] | str]) -> None:
        self.seconds = seconds
        self.now = 0.0
        self.asked: list[tuple[str, float]] = []

    def clock(self) -> float:
        return self.now

    def run(self, name: str, timeout: float) -> Result | str:
        self.asked.append((name, timeout))
        planned = self.seconds[name]
        if isinstance(planned, str):
            return planned
        ran = sum(1 for asked, _ in self.asked if asked == name)
        fit = planned[min(ran, len(planned)) - 1]
        self.now += fit
        return result(name, fit)

    def names(self) -> list[str]:
        return [name for name, _ in self.asked]


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


def test_the_defaults_open_and_close_each_round_and_their_spread_is_the_noise_a_gain_must_clear() -> None:
    machine = Machine({"defaults": [10.0, 11.0, 10.5, 10.2], "upscale_once=1": [9.5, 9.4], "eval_batch=3": [12.0]})
    found = sweep(["upscale_once=1", "eval_batch=3"], machine.run, repeats=2, noise=0.02, clock=machine.clock)
    round_ = ["defaults", "upscale_once=1", "eval_batch=3", "defaults"]
    assert machine.names() == round_ * 2
    assert [r.fit_seconds for r in found.defaults] == [10.0, 11.0, 10.5, 10.2]
    assert found.noise == pytest.approx(0.10)  # 11.0 / 10.0: more than the 2 % floor
    # The median run of each (the lower middle of an even count) is what is compared: 10.2 s against 9.4 s is
    # 8.5 % faster, within the defaults' own 10 %.
    defaults, upscaled = found.results["defaults"], found.results["upscale_once=1"]
    assert isinstance(defaults, Result) and isinstance(upscaled, Result)
    assert (defaults.fit_seconds, upscaled.fit_seconds) == (10.2, 9.4)
    assert found.chosen is None
    assert list(found.results) == ["defaults", "upscale_once=1", "eval_batch=3"]
    assert found.seconds == pytest.approx(machine.now)
    assert "ENGINE_TUNING to set: none" in report(found)
    assert "The defaults ran 4 times; their whole fits differ by 10.0%" in report(found)


def test_choices_of_two_kinds_that_beat_the_defaults_run_together_and_are_what_to_set() -> None:
    machine = Machine(
        {
            "defaults": [10.0, 10.1],
            "upscale_once=1": [9.0],  # 11 % faster
            "conv1_channels=4": [9.5],
            "conv1_channels=8": [9.2],  # the faster padding
            "eval_batch=3": [9.95],  # within the 2 % floor
            "upscale_once=1,conv1_channels=8": [8.5],
        }
    )
    found = sweep(
        ["upscale_once=1", "conv1_channels=4", "conv1_channels=8", "eval_batch=3"], machine.run, clock=machine.clock
    )
    assert machine.names()[-2:] == ["defaults", "upscale_once=1,conv1_channels=8"]
    assert found.chosen is not None and found.chosen.describe() == "upscale_once=1,conv1_channels=8"
    combined = found.results["upscale_once=1,conv1_channels=8"]
    assert isinstance(combined, Result) and combined.fit_seconds == 8.5
    assert "ENGINE_TUNING to set: upscale_once=1,conv1_channels=8" in report(found)

    # One choice alone that beats the defaults has run already: it is proposed without running it again.
    alone = Machine({"defaults": [10.0], "upscale_once=1": [9.0]})
    found = sweep(["upscale_once=1"], alone.run, clock=alone.clock)
    assert alone.names() == ["defaults", "upscale_once=1", "defaults"]
    assert found.chosen is not None and found.chosen.describe() == "upscale_once=1"


def test_a_failed_candidate_is_not_run_again_and_past_the_budget_the_rest_are_skipped() -> None:
    machine = Machine({"defaults": [10.0], "eval_batch=3": "failed (1): out of memory", "upscale_once=1": [9.0]})
    found = sweep(
        ["eval_batch=3", "upscale_once=1"], machine.run, repeats=2, timeout=50, budget=35, clock=machine.clock
    )
    # Round 1 ends at 29 s, the defaults of round 2 at 39 s: past the 35 s budget, nothing more starts.
    first_round = [("defaults", 35), ("eval_batch=3", 25), ("upscale_once=1", 25), ("defaults", 16)]
    assert machine.asked == [*first_round, ("defaults", 6)]
    assert found.results["eval_batch=3"] == "failed (1): out of memory"
    assert isinstance(found.results["upscale_once=1"], Result)
    assert "| eval_batch=3 | failed (1): out of memory |" in report(found)
    over = Machine({"defaults": [40.0], "upscale_once=1": [9.0]})
    found = sweep(["upscale_once=1"], over.run, timeout=50, budget=35, clock=over.clock)
    assert over.names() == ["defaults"]
    assert found.results == {"defaults": found.defaults[0], "upscale_once=1": "skipped: out of budget"}


def test_a_typo_stops_the_sweep_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = Machine({"defaults": [10.0]})
    with pytest.raises(TuningError, match="conv1_channels"):
        sweep(["eval_batch=3", "conv1_channels=5"], machine.run, clock=machine.clock)
    assert machine.asked == []
    # The command says so, as a usage error.
    monkeypatch.setattr(sys, "argv", ["python -m bench.tuning", "--device", "cpu", "--candidates", "conv1_channels=5"])
    with pytest.raises(SystemExit) as exited:
        tuning.main()
    assert exited.value.code == 2
    assert "ENGINE_TUNING='conv1_channels=5'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_runs_each_candidate_in_a_process_of_its_own_and_says_what_to_set(tmp_path: Path) -> None:
    """Which candidate wins is the machine's to say: only the shape of the answer is checked."""
    out = tmp_path / "tuning.json"
    command = [
        *(sys.executable, "-m", "bench.tuning", "--device", "cpu", "--precision", "fp32", "--epochs", "2"),
        *("--batch-size", "8", "--image-size", "63", "--train-samples", "8", "--test-samples", "4"),
        *("--candidates", "eval_batch=3", "--out", str(out)),
    ]
    sweeper = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = sweeper.communicate(timeout=300)
    assert sweeper.returncode == 0, stderr[-2000:]
    assert "2 epochs on 8 + 4 synthetic images" in stdout
    # Each run's result as it came: the defaults first and last, each from a process of its own.
    progress = [line.strip().split(": ", 1) for line in stdout.splitlines() if line.startswith("  ")]
    assert [name for name, _ in progress] == ["defaults", "eval_batch=3", "defaults"]
    pids = [json.loads(run)["pid"] for _, run in progress]
    assert len(set(pids)) == 3 and sweeper.pid not in pids

    rows = [line for line in stdout.splitlines() if line.startswith("| ") and "tuning" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| defaults", "| eval_batch=3"]  # one choice: no combination
    assert "The defaults ran 2 times" in stdout
    saved = json.loads(out.read_text())
    assert saved["chosen"] in (None, "eval_batch=3")
    assert f"ENGINE_TUNING to set: {saved['chosen'] or 'none'}" in stdout
    assert set(saved["results"]) == {"defaults", "eval_batch=3"}
    for name, run in saved["results"].items():
        assert run["tuning"] == name
        assert len(run["epochs"]) == 2 and all(seconds > 0 for seconds in run["epochs"])
        assert run["fit_seconds"] >= sum(run["epochs"])
        assert run["images_per_second"] > 0
