"""`python -m bench` on the CPU: the measured matrix-product peak, a job of a few epochs timed through a worker, and
the whole bench end to end with tiny settings, checked on the markdown it prints."""

import dataclasses
import re
import statistics
import subprocess
import sys
import time

import pytest
import torch

from bench.job import bench_job, engine_tuning, time_job
from bench.job_timing import job_table
from bench.peaks import fp32_matmul_as_convolutions, matmul_peak, matmul_size, measure_peaks
from bench.processes import ROOT
from worker.data import make_synthetic
from worker.tuning import Tuning

CPU = torch.device("cpu")
# Two cores reach well under a TFLOP/s; an answer above this is a unit or FLOP-count mistake.
CPU_TFLOPS_CEILING = 20.0


def test_the_matmul_peak_agrees_with_a_product_timed_by_hand() -> None:
    """2n³ FLOPs over the product's seconds, in TFLOP/s: within a factor of the best of a few products timed here."""
    peak = matmul_peak(CPU, torch.float32)
    n = matmul_size(CPU, torch.float32)
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = []
    for _ in range(3):
        began = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - began)
    by_hand = 2 * n**3 / min(seconds) / 1e12
    assert 0 < peak < CPU_TFLOPS_CEILING
    # Generous: the machine may be shared, and the two figures are taken at different moments.
    assert by_hand / 4 < peak < by_hand * 4


def test_the_peaks_are_measured_in_bf16_and_in_fp32_and_described() -> None:
    peaks = measure_peaks(CPU)
    assert set(peaks.tflops) == {"bf16", "fp32"}
    assert all(0 < t < CPU_TFLOPS_CEILING for t in peaks.tflops.values())
    assert peaks.tflops["bf16"] != peaks.tflops["fp32"]  # two measurements, not one copied
    assert not peaks.tf32  # TF32 is a GPU's
    text = peaks.describe()
    assert "in IEEE fp32, no TF32" in text
    assert "Datasheet peak: none on file for this device" in text


def test_fp32_products_are_allowed_tf32_on_cuda_exactly_when_convolutions_are_and_the_flag_is_set_back() -> None:
    """The flags are process-wide switches, set and read without a GPU; no product runs here."""
    cuda = torch.device("cuda")
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before_matmul, before_cudnn = matmul.allow_tf32, cudnn.allow_tf32
    try:
        for convolutions in (True, False):
            cudnn.allow_tf32 = convolutions
            matmul.allow_tf32 = not convolutions
            with fp32_matmul_as_convolutions(cuda):
                assert matmul.allow_tf32 is convolutions
            assert matmul.allow_tf32 is not convolutions
            with fp32_matmul_as_convolutions(CPU):  # nothing to change on a CPU
                assert matmul.allow_tf32 is not convolutions
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before_matmul, before_cudnn


def test_a_tuning_reaches_the_worker_as_engine_tuning_spells_it() -> None:
    assert engine_tuning(Tuning()) == ""
    assert engine_tuning(Tuning.parse("eval_batch=1024")) == ""  # the default, spelled out
    tuned = Tuning.parse("upscale_once=1, conv1_channels=4")
    assert Tuning.parse(engine_tuning(tuned)) == tuned


@pytest.mark.slow
def test_a_three_epoch_job_reports_each_epoch_its_cold_start_and_the_whole_job() -> None:
    data = make_synthetic(100, 20, seed=0)
    spec = bench_job(epochs=3, steps=2, batch_size=8, image_size=63, device="cpu", precision="fp32", seed=0)
    said: list[str] = []
    t = time_job(data, spec, said.append, Tuning.parse("eval_batch=4"))

    assert t.status == "succeeded"
    assert len(t.epoch_seconds) == 3 and all(s > 0 for s in t.epoch_seconds)
    assert t.cold_ratio == pytest.approx(t.epoch_seconds[0] / statistics.median(t.epoch_seconds[1:]))
    assert t.claim_to_succeeded >= sum(t.epoch_seconds)
    assert t.claim_to_first_step < t.claim_to_first_step_done < t.claim_to_succeeded
    assert 0 < t.evaluation < t.last_step_to_succeeded
    phases = [name for name, _ in t.phases]
    for epoch in (1, 2, 3):
        assert f"epoch {epoch} trained → epoch {epoch} evaluated" in phases
    assert phases[-1] == "epoch 3 recorded → succeeded"
    assert sum(seconds for _, seconds in t.phases) == pytest.approx(t.claim_to_succeeded)
    assert said[-3:] == [f"epoch {n}: {s:.2f} s" for n, s in enumerate(t.epoch_seconds, 1)]

    table = job_table(t)
    assert "training on 16 and testing on 8 of the 100 + 20 images" in table
    assert "engine tuning: eval_batch=4" in table
    assert "| **claim → succeeded** (the whole job;" in table
    assert f"**{t.cold_ratio:.2f}×** (target ≤ 2×)" in table

    one_epoch = dataclasses.replace(t, epoch_seconds=t.epoch_seconds[:1])
    assert one_epoch.cold_ratio is None
    assert "Cold start: one epoch only" in job_table(one_epoch)


def test_a_job_of_all_steps_trains_and_tests_on_every_image_of_the_files() -> None:
    spec = bench_job(epochs=3, steps=None, batch_size=512, image_size=224, device="cpu", precision="fp32", seed=0)
    assert (spec.train_samples, spec.test_samples) == (None, None)
    short = bench_job(epochs=3, steps=2, batch_size=512, image_size=224, device="cpu", precision="fp32", seed=0)
    assert (short.train_samples, short.test_samples) == (1024, 512)


# Each pipeline one warm-up and one timed step of 8 images at 63 px, on 2,000 synthetic images; a job of 2 epochs of
# one step; a tuning, to see it reach both.
BENCH_TINY = [
    *("--image-size", "63", "--batch-size", "8", "--steps", "1", "--warmup", "1", "--workers", "1"),
    *("--dataset", "synthetic", "--train-images", "2000"),
    *("--job-epochs", "2", "--job-steps", "1", "--tuning", "conv1_channels=4"),
]


@pytest.mark.slow
def test_the_bench_end_to_end_prints_mfu_against_the_measured_peak_the_cold_start_and_the_whole_job() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", *BENCH_TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    results = out[out.index("## Benchmark results") :]
    assert "tuning: conv1_channels=4" in results
    assert "| MFU vs datasheet | MFU vs measured matmul |" in results

    peaks = dict(re.findall(r"(bf16|fp32) \*\*([\d.]+)\*\* TFLOP/s at n = \d+", results))
    assert set(peaks) == {"bf16", "fp32"}
    rows = re.findall(
        r"^\| (lecture|engine) \| (bf16|fp32) \| 8 \|.*\| ([\d.e-]+) \| unknown \| ([\d.]+)% \|$", results, re.M
    )
    assert [r[0] for r in rows][:2] == ["lecture", "engine"] and len(rows) >= 2
    for _, precision, tflops, mfu in rows:  # against the measured peak of the row's own precision
        assert float(mfu) == pytest.approx(100 * float(tflops) / float(peaks[precision]), rel=0.02, abs=0.1)

    assert "Job: 2 epochs, training on 8 and testing on 8 of the 2,000 + 400 images" in results
    assert "engine tuning: conv1_channels=4" in results
    assert re.search(r"^\| epoch 1 \(cold\): training and evaluation .*\| [\d.]+ \|$", results, re.M)
    assert re.search(r"^\| epoch 2: training and evaluation .*\| [\d.]+ \|$", results, re.M)
    assert re.search(r"^\| \*\*claim → succeeded\*\* \(the whole job;.*\| \*\*[\d.]+\*\* \|$", results, re.M)
    assert re.search(
        r"^Cold start: first epoch [\d.]+ s / median of the later epochs [\d.]+ s = \*\*[\d.]+×\*\*", results, re.M
    )


def test_the_bench_refuses_a_tuning_that_does_not_parse() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--tuning", "conv1_channels=5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert "conv1_channels" in run.stderr
