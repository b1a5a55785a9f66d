"""Images per second of the lecture's pipeline and of the service's engine, on the same data and weights, and the
share of the device's arithmetic they use (MFU) against its datasheet peak and a matrix-product peak measured here.

Both pipelines are timed the same way: the warm-up steps (DataLoader workers starting, oneDNN/cuDNN choosing kernels,
allocator growth) run first, then the clock runs over the timed steps, with the device synchronised at both
ends so that queued GPU work is counted where it belongs.
"""

import statistics
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from bench import lecture
from service.spec import JobSpec
from worker.data import Dataset, subset
from worker.hardware import bf16_is_native
from worker.hooks import EpochEnd, StartInfo
from worker.model import build_model, lecture_loss, upscale
from worker.train import fit
from worker.tuning import Tuning

Progress = Callable[[int, int, int, float], None]  # (steps done, warm-up steps, all steps, seconds for this one)

# The engine's `fit` evaluates after its epoch; a few test images keep that out of the way.
ENGINE_TEST_IMAGES = 8
# A DataLoader's default prefetch_factor: each worker keeps this many batches ready ahead of the loop.
PREFETCH_FACTOR = 2

# Dense (no sparsity) peak TFLOP/s from NVIDIA's data sheets, as (name fragment, bf16, tf32, fp32); first match
# wins. fp32 work is measured against the TF32 tensor-core rate while cuDNN may use TF32 for fp32 convolutions
# (PyTorch's default, and where nearly all of AlexNet's FLOPs are); against the plain fp32 rate otherwise.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0, 418.0, 60.0),
    ("H200", 989.0, 495.0, 67.0),  # SXM
    ("H100 PCIe", 756.0, 378.0, 51.0),
    ("H100", 989.0, 495.0, 67.0),  # SXM
    ("A100", 312.0, 156.0, 19.5),
)

# The measured peak's square matrix products: large enough that arithmetic, not memory or launch time, sets the pace.
# On a GPU 8192 (1.1 TFLOP a product, about 1.5 ms of an H200's bf16 tensor cores); on a CPU 2048 (17 GFLOP, 0.1 to
# 0.2 s on 2 cores), and 1024 where bf16 is emulated (about 30× slower than fp32).
CUDA_MATMUL, CPU_MATMUL, CPU_EMULATED_BF16_MATMUL = 8192, 2048, 1024
# Untimed products first, for at least this long: a GPU's clocks rise from idle and cuBLAS settles on its kernel within
# it (half a second is hundreds of products); on a CPU one product, as long as it takes, warms caches and threads.
CUDA_MATMUL_WARM_SECONDS, CPU_MATMUL_WARM_SECONDS = 0.5, 0.0
# Then the products timed one by one, of which the median is kept.
CUDA_MATMUL_TIMED, CPU_MATMUL_TIMED = 50, 5
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Throughput:
    """One pipeline's timed steps."""

    pipeline: str
    precision: str
    batch_size: int
    warmup: int
    steps: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.batch_size * self.steps / self.seconds

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so the clock sees it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _endless(loader: DataLoader) -> Generator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


def time_lecture(
    data: Dataset,
    cfg: JobSpec,
    device: torch.device,
    initial: dict[str, torch.Tensor],
    warmup: int,
    steps: int,
    workers: int,
    progress: Progress,
) -> Throughput:
    """The lecture's pipeline (bench/lecture.py) over the whole training set, starting from `initial`.

    The warm-up is at least the batches the workers prefetch: where the loop outruns them (on a GPU), the
    batches they made while it warmed up would otherwise be served instantly to the timed steps.
    """
    warmup = max(warmup, workers * PREFETCH_FACTOR)
    model = lecture.lecture_model(device)
    model.load_state_dict(initial)
    model.train()
    optimizer = lecture.lecture_optimizer(model, cfg.learning_rate)
    dataset = lecture.LectureCIFAR10(data.train_images, data.train_labels, lecture.lecture_transform(cfg.image_size))
    batches = _endless(lecture.make_loader(dataset, cfg.batch_size, workers, cfg.seed))
    began = last = time.perf_counter()
    for step in range(1, warmup + steps + 1):
        images, labels = next(batches)
        lecture.train_step(model, optimizer, images, labels)  # .item() inside: the step has finished
        now = time.perf_counter()
        progress(step, warmup, warmup + steps, now - last)
        last = now
        if step == warmup:
            began = now
    batches.close()  # shuts the DataLoader's worker processes down
    return Throughput("lecture", "fp32", cfg.batch_size, warmup, steps, last - began)


class _StepClock:
    """Hooks for `fit`: the clock starts after the warm-up steps and stops after the last step."""

    def __init__(self, device: torch.device, warmup: int, total: int, progress: Progress) -> None:
        self.device, self.warmup, self.total, self.progress = device, warmup, total, progress
        self.info: StartInfo | None = None
        self.began = self.ended = self.last = 0.0

    def on_start(self, info: StartInfo) -> None:
        self.info = info
        self.last = time.perf_counter()

    def on_step(self, steps_done: int) -> None:
        # Only the two ends synchronise; the steps in between queue up on a GPU as they do in a job.
        if steps_done in (self.warmup, self.total):
            sync(self.device)
        now = time.perf_counter()
        self.progress(steps_done, self.warmup, self.total, now - self.last)
        self.last = now
        if steps_done == self.warmup:
            self.began = now
        if steps_done == self.total:
            self.ended = now

    def on_epoch_end(self, end: EpochEnd) -> None:
        pass


def time_engine(
    data: Dataset,
    cfg: JobSpec,
    device: torch.device,
    initial: dict[str, torch.Tensor],
    warmup: int,
    steps: int,
    progress: Progress,
    tuning: Tuning | None = None,
) -> Throughput:
    """The service's engine: `worker.train.fit` itself, with `tuning`, for one epoch of exactly warmup + steps
    batches."""
    total = warmup + steps
    # A seeded subset of exactly `total` batches makes fit's one epoch the steps to time.
    part = subset(data, total * cfg.batch_size, ENGINE_TEST_IMAGES, cfg.seed)
    clock = _StepClock(device, warmup, total, progress)
    fit(cfg, part, clock, tuning=tuning)
    assert clock.info is not None
    if not np.array_equal(clock.info.initial.conv1, initial["features.0.weight"].cpu().numpy()):
        raise RuntimeError("the engine did not start from the lecture's initial weights")
    return Throughput("engine", clock.info.precision, cfg.batch_size, warmup, steps, clock.ended - clock.began)


def train_step_flops(batch_size: int, image_size: int) -> int:
    """FLOPs of one training step (forward and backward; the optimiser adds no counted FLOPs).

    Counted on the meta device, where tensors have shapes but no data: instant, and the same on any machine.
    The lecture and the engine run the same model, so the count is the same for both.
    """
    meta = torch.device("meta")
    model = build_model(meta, seed=0).to(memory_format=torch.channels_last)
    images = torch.zeros(batch_size, 3, 32, 32, dtype=torch.uint8, device=meta)
    labels = torch.zeros(batch_size, dtype=torch.int64, device=meta)
    with FlopCounterMode(display=False) as counter:
        x = upscale(images, image_size).contiguous(memory_format=torch.channels_last)
        lecture_loss(model(x), labels).backward()
    return counter.get_total_flops()


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak for `precision`, from the table above; None where it is not known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, bf16, tf32, fp32 in PEAK_TFLOPS:
        if fragment in name:
            if precision == "bf16":
                return bf16
            return tf32 if tf32_for_fp32(device) else fp32
    return None


# ---------------------------------------------------------------- the measured peak and MFU


def tf32_for_fp32(device: torch.device) -> bool:
    """Whether fp32 work runs on TF32 tensor cores here: where cuDNN may use them for fp32 convolutions (PyTorch's
    default, and nearly all of AlexNet's FLOPs), the fp32 peak is measured and quoted with TF32 too."""
    return device.type == "cuda" and bool(torch.backends.cudnn.allow_tf32)


@contextmanager
def fp32_matmul_as_convolutions(device: torch.device) -> Iterator[None]:
    """cuBLAS allowed TF32 for fp32 products exactly when cuDNN is for fp32 convolutions, then set back as it was.

    PyTorch's defaults differ (TF32 for convolutions, not for matrix products), and the engine's fp32 FLOPs are
    convolutions: its fp32 peak is the TF32 one unless `torch.backends.cudnn.allow_tf32` was turned off."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32_for_fp32(device)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def matmul_size(device: torch.device, dtype: torch.dtype) -> int:
    """The side of the square products that `matmul_peak` times (see CUDA_MATMUL above)."""
    if device.type == "cuda":
        return CUDA_MATMUL
    return CPU_EMULATED_BF16_MATMUL if dtype == torch.bfloat16 and not bf16_is_native(device) else CPU_MATMUL


def _product_seconds(device: torch.device, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> float:
    if device.type == "cuda":  # timed on the device itself, between two events around the one product
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    began = time.perf_counter()
    torch.mm(a, b, out=out)  # synchronous on the CPU
    return time.perf_counter() - began


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """TFLOP/s of a large square matrix product in `dtype` on `device` (fp32: with TF32 as `tf32_for_fp32` says):
    the median of several timed products of random normal matrices, after untimed ones."""
    n = matmul_size(device, dtype)
    cuda = device.type == "cuda"
    warm_seconds = CUDA_MATMUL_WARM_SECONDS if cuda else CPU_MATMUL_WARM_SECONDS
    timed = CUDA_MATMUL_TIMED if cuda else CPU_MATMUL_TIMED
    generator = torch.Generator(device=device).manual_seed(0)
    # Random normal, never zeros or constants: some hardware draws less power, and so clocks higher, on them.
    a, b = (torch.randn(n, n, device=device, dtype=dtype, generator=generator) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    with fp32_matmul_as_convolutions(device):
        warm_until = time.perf_counter() + warm_seconds
        while True:
            torch.mm(a, b, out=out)
            sync(device)
            if time.perf_counter() >= warm_until:
                break
        seconds = statistics.median(_product_seconds(device, a, b, out) for _ in range(timed))
    return 2 * n**3 / seconds / 1e12


@dataclass(frozen=True)
class MatmulPeaks:
    """The measured matrix-product peak for each precision the pipelines run, and how it was measured."""

    device: torch.device
    tflops: dict[str, float]  # by precision, as Throughput.precision names it
    sizes: dict[str, int]
    tf32: bool  # whether fp32 was measured on TF32 tensor cores

    def describe(self) -> str:
        """One paragraph for the results: each peak, its product size and arithmetic, and the datasheet's."""
        cuda = self.device.type == "cuda"
        timed = CUDA_MATMUL_TIMED if cuda else CPU_MATMUL_TIMED
        untimed = f"{CUDA_MATMUL_WARM_SECONDS:g} s of untimed ones" if cuda else "an untimed one"
        fp32 = (
            "on TF32 tensor cores (torch.backends.cuda.matmul.allow_tf32 turned on for it, as "
            "torch.backends.cudnn.allow_tf32 lets the engine's fp32 convolutions use them)"
            if self.tf32
            else "in IEEE fp32, no TF32"
        )
        measured = "; ".join(
            f"{p} **{t:.3g}** TFLOP/s at n = {self.sizes[p]}{', ' + fp32 if p == 'fp32' else ''}"
            for p, t in self.tflops.items()
        )
        sheet = {p: peak_tflops(self.device, p) for p in self.tflops}
        datasheet = (
            ", ".join(
                f"{p}{' (TF32)' if p == 'fp32' and self.tf32 else ''} {t:g} TFLOP/s" for p, t in sheet.items() if t
            )
            or "none on file for this device"
        )
        return (
            f"Matrix-product peak measured on this device (n×n by n×n, random normal, the median of {timed} timed "
            f"products after {untimed}): {measured}. Datasheet peak: {datasheet}."
        )


def measure_peaks(device: torch.device) -> MatmulPeaks:
    """`matmul_peak` in bf16 and in fp32."""
    tflops = {name: matmul_peak(device, dtype) for name, dtype in DTYPES.items()}
    sizes = {name: matmul_size(device, dtype) for name, dtype in DTYPES.items()}
    return MatmulPeaks(device, tflops, sizes, tf32_for_fp32(device))


def throughput_table(rows: list[Throughput], step_flops: int, peaks: MatmulPeaks) -> str:
    """The pipelines as a markdown table: images/s, the engine against the lecture, TFLOP/s and MFU against the
    datasheet's peak and the measured one of the same precision."""
    lecture = rows[0].images_per_second
    lines = [
        "| pipeline | precision | batch | images/s | s/step | vs lecture | TFLOP/s | MFU vs datasheet | "
        "MFU vs measured matmul |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tflops = step_flops / r.seconds_per_step / 1e12
        datasheet = peak_tflops(peaks.device, r.precision)
        measured = peaks.tflops.get(r.precision)
        lines.append(
            f"| {r.pipeline} | {r.precision} | {r.batch_size} | {r.images_per_second:,.1f} | "
            f"{r.seconds_per_step:.3f} | {r.images_per_second / lecture:.2f}× | {tflops:.3g} | "
            f"{_share(tflops, datasheet)} | {_share(tflops, measured)} |"
        )
    return "\n".join(lines)


def _share(tflops: float, peak: float | None) -> str:
    return "unknown" if not peak else f"{tflops / peak:.1%}"
