"""The engine's speed choices (worker/tuning.py) change how it runs, never what it learns.

Each is checked on the CPU against the defaults, on the same data, seed and steps: bit for bit where the
arithmetic is the same, to rounding where the choice reorders it.
"""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from service.spec import JobSpec
from tests.test_engine import Recorder
from worker.batches import DeviceImages
from worker.data import Dataset, make_synthetic
from worker.model import ChannelPaddedConv2d, build_model, kernels, pad_conv1, upscale
from worker.train import fit, warm_up
from worker.tuning import Tuning, TuningError, prepare, use_cudnn_benchmark

CPU = torch.device("cpu")
CFG = JobSpec(epochs=2, batch_size=16, image_size=64, seed=3, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_synthetic(40, 21, CFG.seed)  # 3 steps an epoch, the last one smaller; 21 test images


@pytest.fixture(scope="module")
def defaults(data: Dataset) -> Recorder:
    recorder = Recorder(keep_checkpoints=True)
    fit(CFG, data, recorder)
    return recorder


def run(data: Dataset, tuning: Tuning) -> Recorder:
    recorder = Recorder()
    fit(CFG, data, recorder, tuning=tuning)
    assert len(recorder.ends) == CFG.epochs
    return recorder


@pytest.mark.parametrize(("size", "channels"), [(63, 3), (64, 4), (100, 8)])
def test_images_upscaled_once_are_the_batches_upscaled_each_time(size: int, channels: int) -> None:
    images = torch.from_numpy(np.random.default_rng(size).integers(0, 256, (30, 3, 32, 32), dtype=np.uint8))
    each, once = DeviceImages(images, size, channels), DeviceImages(images, size, channels, once=True)
    assert once.stored is not None and once.stored.dtype == torch.uint8
    assert once.stored.shape == (30, size, size, channels)
    for index in (torch.tensor([29, 0, 7, 7, 12]), slice(8, 30)):
        a, b = each.batch(index), once.batch(index)
        n = len(range(30)[index]) if isinstance(index, slice) else len(index)
        assert a.shape == b.shape == (n, channels, size, size)
        assert torch.equal(a, b)  # whole levels stored as uint8 and divided by 255 again: nothing lost
        assert a.is_contiguous(memory_format=torch.channels_last)
        assert b.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a[:, :3], upscale(images[index], size))
        assert not a[:, 3:].any()  # the padding channels are zeros


def test_upscaling_once_trains_bit_for_bit_as_upscaling_each_batch(data: Dataset, defaults: Recorder) -> None:
    tuned = run(data, Tuning(upscale_once=True))
    for a, b in zip(defaults.ends, tuned.ends, strict=True):
        assert a.result.step_losses == b.result.step_losses
        assert (a.result.test_loss, a.result.confusion) == (b.result.test_loss, b.result.confusion)
    final, tuned_final = defaults.ends[-1].state_dict(), tuned.ends[-1].state_dict()
    assert all(torch.equal(final[name], tuned_final[name]) for name in final)


@pytest.mark.parametrize("channels", [4, 8])
def test_conv1_padded_with_zero_channels_computes_the_same_convolution(channels: int) -> None:
    plain = build_model(CPU, seed=1)
    padded = build_model(CPU, seed=1)
    pad_conv1(padded)
    conv1 = padded.get_submodule("features.0")
    assert isinstance(conv1, ChannelPaddedConv2d)
    assert conv1.weight.shape == (64, 3, 11, 11)  # the parameter keeps its shape, the state_dict its keys
    assert list(padded.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), padded.parameters(), strict=True))

    x = torch.rand(2, 3, 63, 63, generator=torch.Generator().manual_seed(channels))
    wide = torch.cat([x, torch.zeros(2, channels - 3, 63, 63)], dim=1)
    plain.eval()
    padded.eval()
    out, out_padded = plain(x), padded(wide)
    torch.testing.assert_close(out_padded, out, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    out_padded.sum().backward()
    for a, b in zip(plain.parameters(), padded.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6)
    # An unpadded input still works (evaluation may send either); oneDNN may sum 3 and 4 channels differently.
    torch.testing.assert_close(padded(x), out_padded, rtol=1e-5, atol=1e-6)


def test_a_padded_conv1_trains_as_the_plain_one_and_reads_its_checkpoints(data: Dataset, defaults: Recorder) -> None:
    tuned = run(data, Tuning(conv1_channels=4))
    for a, b in zip(defaults.ends, tuned.ends, strict=True):
        assert b.result.step_losses == pytest.approx(a.result.step_losses, rel=1e-4)
        assert b.result.test_loss == pytest.approx(a.result.test_loss, rel=1e-4)
    final = tuned.ends[-1]
    assert final.trained.conv1.shape == (64, 3, 11, 11)  # the pictures draw the same kernels
    np.testing.assert_allclose(final.trained.conv1, defaults.ends[-1].trained.conv1, rtol=1e-3, atol=1e-5)

    # A checkpoint written with one choice resumes with the other: the state_dict is the same model's.
    resumed = Recorder()
    fit(CFG, data, resumed, resume=defaults.checkpoints[0], tuning=Tuning(conv1_channels=8))
    assert [e.result.epoch for e in resumed.ends] == [2]
    assert resumed.ends[0].result.step_losses == pytest.approx(defaults.ends[1].result.step_losses, rel=1e-4)


def test_the_evaluation_batch_does_not_change_the_evaluation(data: Dataset, defaults: Recorder) -> None:
    tuned = run(data, Tuning(eval_batch=4))  # 21 test images: five batches of 4 and one of 1
    for a, b in zip(defaults.ends, tuned.ends, strict=True):
        assert a.result.step_losses == b.result.step_losses  # training is untouched
        assert b.result.confusion == a.result.confusion
        assert b.result.test_accuracy == a.result.test_accuracy
        assert b.result.mistakes == a.result.mistakes
        assert b.result.test_loss == pytest.approx(a.result.test_loss, rel=1e-5)


def test_the_cudnn_policy_sets_the_benchmark_flag_for_each_batch_shape_and_leaves_a_cpu_alone() -> None:
    """The flag is a process-wide switch, set and read without a GPU: each policy's answer for the full training
    batch (64), the last smaller one (17) and an evaluation batch of another size (100)."""
    cuda, before = torch.device("cuda"), torch.backends.cudnn.benchmark
    try:
        for policy, wanted in [("all", [True, True, True]), ("train", [True, False, False]), ("off", [False] * 3)]:
            for batch, want in zip((64, 17, 100), wanted, strict=True):
                torch.backends.cudnn.benchmark = not want  # so that the answer is the policy's, not what was left
                use_cudnn_benchmark(cuda, Tuning(cudnn_benchmark=policy), batch, train_batch=64)
                assert torch.backends.cudnn.benchmark is want, (policy, batch)
        for flag in (True, False):  # on a CPU, cuDNN is not used: the flag is left as it was
            torch.backends.cudnn.benchmark = flag
            use_cudnn_benchmark(CPU, Tuning(cudnn_benchmark="off" if flag else "all"), 17, train_batch=64)
            assert torch.backends.cudnn.benchmark is flag
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.slow
def test_a_compiled_model_trains_as_the_eager_one_and_its_weights_keep_their_names() -> None:
    tiny = make_synthetic(8, 4, seed=1)
    cfg = JobSpec(epochs=1, batch_size=4, image_size=63, seed=1, device="cpu", precision="fp32")
    eager, compiled = Recorder(), Recorder()
    fit(cfg, tiny, eager)
    # Compiled code draws dropout from its own generator; told to use eager's, it must take the same steps.
    with torch._inductor.config.patch(fallback_random=True):
        fit(cfg, tiny, compiled, tuning=Tuning(compile="default"))
    a, b = eager.ends[0].result, compiled.ends[0].result
    assert b.step_losses == pytest.approx(a.step_losses, rel=1e-4)
    assert b.test_loss == pytest.approx(a.test_loss, rel=1e-4)
    # The weights are saved from the model itself, not from the compiled wrapper (whose keys gain a prefix).
    weights = compiled.ends[0].state_dict()
    assert list(weights) == list(build_model(CPU, 1).state_dict())
    checkpoint = compiled.ends[0].checkpoint()
    assert list(checkpoint.model) == list(weights)


def test_prepare_gives_the_model_itself_unless_compiling() -> None:
    model = build_model(CPU, seed=0)
    assert prepare(model, Tuning()) is model
    assert prepare(model, Tuning(conv1_channels=8)) is model
    assert isinstance(model.get_submodule("features.0"), ChannelPaddedConv2d)
    kernels(model, 0)  # the pictures read conv1 as before
    compiled = prepare(build_model(CPU, seed=0), Tuning(compile="default"))
    assert isinstance(compiled, nn.Module)
    assert any(name.startswith("_orig_mod.") for name in compiled.state_dict())


def test_tuning_reads_name_value_pairs_and_says_what_is_wrong() -> None:
    assert Tuning.parse("") == Tuning()
    assert Tuning().describe() == "defaults"
    tuning = Tuning.parse(" upscale_once , conv1_channels=8, compile=max-autotune-no-cudagraphs, eval_batch=512 ")
    assert tuning == Tuning(upscale_once=True, conv1_channels=8, compile="max-autotune-no-cudagraphs", eval_batch=512)
    assert Tuning.parse(tuning.describe()) == tuning
    assert tuning.describe() == "upscale_once=1,conv1_channels=8,compile=max-autotune-no-cudagraphs,eval_batch=512"
    assert Tuning.parse("upscale_once=0, cudnn_benchmark=train") == Tuning(cudnn_benchmark="train")
    for text, said in [
        ("conv1_channels=5", "conv1_channels"),
        ("upscale_twice=1", "upscale_twice"),
        ("eval_batch=0", "eval_batch"),
        ("compile=fastest", "compile"),
        ("warm_up=maybe", "warm_up"),
    ]:
        with pytest.raises(TuningError, match=said) as caught:
            Tuning.parse(text)
        assert text in str(caught.value)


def test_a_warm_up_leaves_nothing_behind_that_changes_the_next_job() -> None:
    cfg = JobSpec(epochs=1, batch_size=4, image_size=63, seed=0, device="cpu", precision="fp32")
    job = make_synthetic(8, 3, seed=0)
    cold = Recorder()
    fit(cfg, job, cold)
    assert warm_up(cfg.model_copy(update={"seed": 9}), Tuning(eval_batch=3, upscale_once=True)) > 0
    warm = Recorder()
    fit(cfg, job, warm)
    # Each job seeds the process's generator as it builds its model: what the warm-up drew does not leak into it.
    assert warm.ends[0].result.step_losses == cold.ends[0].result.step_losses
    assert warm.ends[0].result.test_loss == cold.ends[0].result.test_loss


def test_upscaling_once_falls_back_where_it_would_not_fit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    images = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    monkeypatch.setattr("worker.batches.free_memory", lambda device: 10 * 3 * 64 * 64)  # needs all of it: too much
    with caplog.at_level(logging.INFO, logger="worker"):
        kept = DeviceImages(images, 64, once=True)
    assert kept.stored is None
    assert "upscaling batch by batch instead" in caplog.text
    assert torch.equal(kept.batch(slice(0, 2)), upscale(images[:2], 64))


def test_a_worker_refuses_to_start_on_an_engine_tuning_it_cannot_read(tmp_path: object) -> None:
    env = {**os.environ, "ENGINE_TUNING": "conv1_channels=5", "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db"}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "ENGINE_TUNING='conv1_channels=5'" in done.stderr
    assert "conv1_channels" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_warm_up_meets_every_batch_shape_the_job_will(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = DeviceImages.batch

    def batch(self: DeviceImages, index: torch.Tensor | slice) -> torch.Tensor:
        x = real(self, index)
        seen.append(len(x))
        return x

    monkeypatch.setattr(DeviceImages, "batch", batch)
    cfg = JobSpec(batch_size=6, image_size=63, train_samples=20, test_samples=7, device="cpu", precision="fp32")
    warm_up(cfg, Tuning(eval_batch=4))
    # Training batches of 6 and the last of 20 % 6 = 2; evaluation batches of 4 and the last of 7 % 4 = 3.
    assert sorted(set(seen)) == [2, 3, 4, 6]
