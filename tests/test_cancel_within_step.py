"""A cancel stops a job within the step under way, however long the step: `fit` asks its hooks between layers and as
gradients are computed, and the step is dropped before the optimizer changes anything."""

from pathlib import Path

import httpx
import pytest

from bench.processes import api_server, start_worker, stop, wait_for
from service.config import Settings
from service.spec import JobSpec
from worker.data import make_synthetic
from worker.hooks import QuietHooks, Stopped, StopReason
from worker.train import fit

CFG = JobSpec(
    dataset="synthetic", epochs=1, batch_size=16, image_size=63, train_samples=32, device="cpu", precision="fp32"
)


class StopsWithinTheStep(QuietHooks):
    """Raises a cancel at the `at`-th check within a step; counts the steps that ended."""

    def __init__(self, at: int) -> None:
        self.at, self.checks, self.steps = at, 0, 0

    def on_step(self, steps_done: int, checkpoint: object = None) -> None:
        self.steps = steps_done

    def within_step(self) -> None:
        self.checks += 1
        if self.checks == self.at:
            raise Stopped(StopReason.CANCEL)


@pytest.mark.parametrize("at", [3, 30], ids=["in the forward pass", "in the backward pass"])
def test_a_stop_within_the_first_step_leaves_it_unfinished(at: int) -> None:
    # The model has 8 weight layers and 21 leaf modules: 21 forward checks, then 16 gradient checks.
    hooks = StopsWithinTheStep(at)
    with pytest.raises(Stopped) as stopped:
        fit(CFG, make_synthetic(32, 16, CFG.seed), hooks)
    assert stopped.value.reason == StopReason.CANCEL
    assert stopped.value.unfinished == "step 1 of epoch 1"
    assert stopped.value.checkpoint is None  # nothing to resume from within a step
    assert hooks.steps == 0  # on_step never heard of a finished step


def test_a_stop_during_the_evaluation_names_it() -> None:
    # Two steps an epoch: 2 × (21 + 16) checks of training, then the evaluation's forward passes.
    hooks = StopsWithinTheStep(2 * 37 + 5)
    with pytest.raises(Stopped) as stopped:
        fit(CFG, make_synthetic(32, 16, CFG.seed), hooks)
    assert stopped.value.unfinished == "the evaluation of epoch 1"
    assert hooks.steps == 2


@pytest.mark.slow
def test_a_job_whose_step_is_long_is_cancelled_within_its_first_step(settings: Settings, tmp_path: Path) -> None:
    # 224 px in batches of 128: a step takes several seconds on a CPU (tens where the cores are shared); a cancel
    # heard only between steps would finish the step first and log no dropped step.
    slow = {
        "dataset": "synthetic",
        "epochs": 1,
        "image_size": 224,
        "batch_size": 128,
        "train_samples": 256,
        "test_samples": 16,
        "device": "cpu",
        "precision": "fp32",
    }
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
        job_id = client.post("/jobs", json=slow).json()["id"]
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            wait_for(lambda: "training on cpu" in client.get(f"/jobs/{job_id}/logs").text, 300, "training to start")
            asked = client.post(f"/jobs/{job_id}/cancel").json()
            assert asked["status"] == "running" and asked["cancel_requested"] is True  # what shows "cancelling…"
            ended = client.get(f"/jobs/{job_id}", params={"wait": 300}).json()
            assert ended["status"] == "cancelled", ended
            assert ended["progress"]["steps_done"] == 0
            assert client.get(f"/jobs/{job_id}/metrics").json()["epochs"] == []
            log = client.get(f"/jobs/{job_id}/logs").text
            assert "stopped (cancel) during step 1 of epoch 1, which is dropped" in log
        finally:
            assert stop(worker) == 0
