"""The engine on a CUDA GPU: the same pixels as PIL, the lecture's numerics in fp32, each speed choice training as
the defaults do, and a network that learns in bf16. Skipped where there is no CUDA GPU.

It needs no fixture from conftest.py, so that a GPU host with PyTorch and the service's core dependencies (but not
the API's or the test servers') runs it alone: `python -m pytest --noconftest tests/test_cuda.py` (bench/gpu.sh).
"""

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from bench import lecture
from service.spec import JobSpec
from tests.test_engine import CFG as ENGINE_CFG
from tests.test_engine import Recorder, engine_losses, lecture_steps
from worker.batches import DeviceImages
from worker.data import Dataset, make_synthetic
from worker.model import upscale
from worker.train import fit
from worker.tuning import Tuning

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")
CFG = JobSpec(epochs=2, batch_size=16, image_size=64, seed=5, device="cuda", precision="fp32")


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """fp32 as fp32: no TF32 in convolutions or matrix products (PyTorch allows it in cuDNN by default)."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


@pytest.mark.parametrize("size", [63, 64, 224, 227])
def test_the_upscale_on_cuda_is_pils_within_one_level(size: int) -> None:
    images = np.random.default_rng(size).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    transform = lecture.lecture_transform(size)
    expected = torch.stack([transform(Image.fromarray(im.transpose(1, 2, 0))) for im in images])
    got = upscale(torch.from_numpy(images).to(CUDA), size).cpu()
    assert (got - expected).abs().max().item() <= 1 / 255 + 1e-6
    once = DeviceImages(torch.from_numpy(images).to(CUDA), size, channels=4, once=True)
    assert torch.equal(once.batch(slice(0, 8))[:, :3].cpu(), got)  # kept as uint8 on the GPU: nothing lost


@pytest.mark.usefixtures("exact_fp32")
def test_engine_and_lecture_take_the_same_first_steps_on_cuda_in_fp32() -> None:
    """As tests/test_engine.py's test on the CPU, with both pipelines on the GPU."""
    data = make_synthetic(3 * ENGINE_CFG.batch_size, 4, ENGINE_CFG.seed)
    order = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(ENGINE_CFG.seed))
    batches = list(order.split(ENGINE_CFG.batch_size))
    reference, inputs = lecture_steps(data, batches, CUDA)
    assert all(2.0 < loss < 2.6 for loss in reference)
    labels = [torch.from_numpy(data.train_labels)[idx] for idx in batches]
    # cuDNN sums NHWC and NCHW convolutions in different orders: fp32 rounding apart, the same steps.
    assert engine_losses(inputs, labels, CUDA) == pytest.approx(reference, rel=1e-4)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_synthetic(40, 21, CFG.seed)


def run(data: Dataset, tuning: Tuning) -> Recorder:
    recorder = Recorder()
    fit(CFG, data, recorder, tuning=tuning)
    assert recorder.start is not None and recorder.start.device.startswith("cuda")
    assert len(recorder.ends) == CFG.epochs
    return recorder


@pytest.mark.usefixtures("exact_fp32")
@pytest.mark.parametrize(
    "choice",
    [
        "upscale_once=1",
        "conv1_channels=4",
        "conv1_channels=8",
        "eval_batch=4",
        "cudnn_benchmark=train",
        "cudnn_benchmark=off",
        "upscale_once=1,conv1_channels=8,eval_batch=4,cudnn_benchmark=train",
    ],
)
def test_each_choice_trains_on_cuda_as_the_defaults_do(data: Dataset, choice: str) -> None:
    defaults, tuned = run(data, Tuning()), run(data, Tuning.parse(choice))
    for a, b in zip(defaults.ends, tuned.ends, strict=True):
        assert b.result.step_losses == pytest.approx(a.result.step_losses, rel=1e-4)
        assert b.result.test_loss == pytest.approx(a.result.test_loss, rel=1e-4)
    trained, tuned_trained = defaults.ends[-1].state_dict(), tuned.ends[-1].state_dict()
    assert list(trained) == list(tuned_trained)
    for name, value in trained.items():
        torch.testing.assert_close(tuned_trained[name], value, rtol=1e-3, atol=1e-5)


@pytest.mark.usefixtures("exact_fp32")
def test_a_compiled_model_trains_on_cuda_as_the_eager_one(data: Dataset) -> None:
    defaults = run(data, Tuning())
    with torch._inductor.config.patch(fallback_random=True):  # dropout from eager's generator, as the defaults
        compiled = run(data, Tuning(compile="default"))
    for a, b in zip(defaults.ends, compiled.ends, strict=True):
        assert b.result.step_losses == pytest.approx(a.result.step_losses, rel=1e-3)
    assert list(compiled.ends[-1].state_dict()) == list(defaults.ends[-1].state_dict())


@pytest.mark.parametrize("tuning", ["", "upscale_once=1,conv1_channels=4"])
def test_synthetic_data_is_learnable_on_cuda_in_bf16(tuning: str) -> None:
    cfg = JobSpec(dataset="synthetic", epochs=2, batch_size=32, image_size=64, seed=0, device="cuda", precision="bf16")
    recorder = Recorder()
    fit(cfg, make_synthetic(1280, 200, seed=0), recorder, tuning=Tuning.parse(tuning))
    assert recorder.start is not None and recorder.start.device.startswith("cuda")
    accuracy = [end.result.test_accuracy for end in recorder.ends]
    assert accuracy[-1] >= 0.5, accuracy  # 80 steps of 32 leave chance (0.1) far behind, as on the CPU
