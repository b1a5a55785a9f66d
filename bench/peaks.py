"""What the device can do at best: its datasheet peak and a matrix product's measured one, and the pipelines' MFU
against both.

The measured peak is the median of large square matrix products timed one by one after untimed ones, in each
precision the pipelines run; fp32 with TF32 exactly where cuDNN may use it for the engine's fp32 convolutions.
"""

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from bench.measure import Throughput, sync
from worker.hardware import bf16_is_native

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
# 0.2 s on 2 cores), and 512 where bf16 is emulated: there a product runs about 100× slower than in fp32, at the same
# rate from n = 256 to 512 (0.0016 TFLOP/s on one AVX2 core, 0.17 s at 512), and slower still beyond, where the
# operands leave the cache (1024: 0.0007 TFLOP/s, 2.9 s a product, 17 s for the six the peak takes).
CUDA_MATMUL, CPU_MATMUL, CPU_EMULATED_BF16_MATMUL = 8192, 2048, 512
# Untimed products first, for at least this long: a GPU's clocks rise from idle and cuBLAS settles on its kernel within
# it (half a second is hundreds of products); on a CPU one product, as long as it takes, warms caches and threads.
CUDA_MATMUL_WARM_SECONDS, CPU_MATMUL_WARM_SECONDS = 0.5, 0.0
# Then the products timed one by one, of which the median is kept.
CUDA_MATMUL_TIMED, CPU_MATMUL_TIMED = 50, 5
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


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
