"""What a worker can train on: CUDA or the CPU, and whether bf16 is native there or emulated."""

import functools
import os
from pathlib import Path

import torch


class TrainingError(Exception):
    """A job cannot run as specified (e.g. CUDA asked for where there is none); the message is for users."""


def resolve_device(request: str) -> torch.device:
    """`auto` → CUDA when there is one; `cuda` without one is a TrainingError."""
    if request == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was requested but this worker has no CUDA GPU; use 'auto' or 'cpu'")
    if request in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# oneDNN's instruction-set levels, lowest first (its ONEDNN_MAX_CPU_ISA names); bf16 arithmetic is native from
# AVX512_CORE_BF16 on. Below that oneDNN emulates it, about 30× slower than fp32.
_ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX, and oneDNN allowed to use them: bf16 matrix work is native, not emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()  # an operator's cap on what oneDNN may use
    if cap in _ONEDNN_ISAS:
        return _ONEDNN_ISAS.index(cap) >= _ONEDNN_ISAS.index("AVX512_CORE_BF16")
    return True


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 autocast on `device` runs natively (fast) rather than emulated (about 30× slower on a CPU)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_fast_bf16()


def resolve_precision(request: str, device: torch.device) -> str:
    """`auto` → bf16 autocast where it is native (CUDA, CPUs with AVX-512 BF16 or AMX), fp32 elsewhere."""
    if request != "auto":
        return request
    return "bf16" if bf16_is_native(device) else "fp32"


def check_precision(request: str, device: torch.device) -> None:
    """A job may not ask for bf16 where it is emulated: that is only ever slower, never better, than fp32."""
    if request == "bf16" and not bf16_is_native(device):
        raise TrainingError(
            f"precision 'bf16' was requested but this worker's {device.type.upper()} has no native bf16 "
            "(no AVX-512 BF16 or AMX): emulated bf16 trains about 30× slower than fp32. "
            "Use 'auto' or 'fp32', or run it where a worker has native bf16."
        )
