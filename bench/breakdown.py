"""A profiled training step's breakdown: its parts in ms per step (`Row`, `Breakdown`), each layer's FLOPs, and the
markdown tables and lines that `python -m bench.profile` prints."""

from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.attribution import BATCH, COMPILED, ELEMENTWISE, LAYERS, LOSS, OPTIMIZER, OTHER, Contents, Op
from bench.peaks import peak_tflops
from worker.model import build_model, lecture_loss, pad_conv1
from worker.tuning import Tuning

MAX_NAME = 80  # kernel names run to hundreds of characters of template arguments


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    """One part of the step, in ms per step; forward and backward are None for a part that has no such split."""

    part: str
    forward_ms: float | None
    backward_ms: float | None
    total_ms: float
    flops: int | None = None  # per step, forward and backward (FlopCounterMode); None where nothing is counted


@dataclass(frozen=True)
class Breakdown:
    device: torch.device
    precision: str
    tuning: str
    batch_size: int
    image_size: int
    warmup: int
    steps: int
    wall_ms: float  # per step, timed without the profiler, the device synchronised at both ends of the steps
    profiled_wall_ms: float  # the same, for the profiled steps
    profiled_ms: float  # per step: all kernel time (CUDA), or all CPU time in the profiler's events
    rows: list[Row]
    top: list[Op]
    contents: Contents = field(default_factory=dict)  # the kernels or ops that make up each row
    notes: list[str] = field(default_factory=list)

    @property
    def basis(self) -> str:
        return "device (kernel) time" if self.device.type == "cuda" else "CPU time"

    @property
    def total_ms(self) -> float:
        return sum(r.total_ms for r in self.rows)

    def share(self, ms: float) -> float:
        return ms / self.total_ms if self.total_ms else 0.0


# ---------------------------------------------------------------- each layer's FLOPs


def part_flops(batch_size: int, image_size: int, tuning: Tuning) -> dict[str, tuple[int, int]]:
    """Each layer's (forward, backward) FLOPs for one step, counted on the meta device, where it is instant."""
    meta = torch.device("meta")
    model = build_model(meta, seed=0).to(memory_format=torch.channels_last)
    if tuning.conv1_channels != 3:
        pad_conv1(model)
    x = torch.zeros(batch_size, tuning.conv1_channels, image_size, image_size, device=meta)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch_size, dtype=torch.int64, device=meta)
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as whole:
        lecture_loss(model(x), y).backward()
    root = type(model).__name__  # FlopCounterMode names modules by the root's class and their path
    out = {}
    for name, part in LAYERS.items():
        fw = sum(forward.get_flop_counts().get(f"{root}.{name}", {}).values())
        out[part] = (fw, sum(whole.get_flop_counts().get(f"{root}.{name}", {}).values()) - fw)
    return out


def part_rows(contents: Contents, flops: dict[str, tuple[int, int]], model_part: str) -> list[Row]:
    """The step's rows in model order from the attributed `contents`, each layer with its FLOPs."""

    def ms(part: str, phase: str) -> float:
        return sum(contents.get((part, phase), {}).values())

    counted = {part: sum(f) for part, f in flops.items()}
    counted[COMPILED] = sum(counted.values())  # FlopCounterMode counts convolutions and matmuls only
    rows = [Row(BATCH, None, None, ms(BATCH, "total"))]
    model = [*LAYERS.values(), ELEMENTWISE] if model_part == ELEMENTWISE else [COMPILED]
    for part in [*model, LOSS]:
        fw, bw = ms(part, "forward"), ms(part, "backward")
        rows.append(Row(part, fw, bw, fw + bw, counted.get(part)))
    rows += [Row(p, None, None, ms(p, "total")) for p in (OPTIMIZER, OTHER)]
    return rows


# ---------------------------------------------------------------- the report


def _cell(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.3f}"


def _name(name: str) -> str:
    name = name.replace("|", "\\|")  # a markdown table's cell separator
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def parts_table(b: Breakdown) -> str:
    """The step's time by part, in model order, with each layer's TFLOP/s (and its share of the device's peak)."""
    peak = peak_tflops(b.device, b.precision)
    lines = [
        "| part | forward ms/step | backward ms/step | total ms/step | share | GFLOP/step | TFLOP/s |"
        + (" of peak |" if peak else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if peak else ""),
    ]

    def speed(flops: int | None, ms: float) -> list[str]:
        if not flops or ms <= 0:
            return ["", ""] + ([""] if peak else [])
        tflops = flops / (ms / 1000) / 1e12
        return [f"{flops / 1e9:.2f}", f"{tflops:.3g}"] + ([f"{tflops / peak:.1%}"] if peak else [])

    for r in b.rows:
        cells = [r.part, _cell(r.forward_ms), _cell(r.backward_ms), _cell(r.total_ms), f"{b.share(r.total_ms):.1%}"]
        lines.append("| " + " | ".join(cells + speed(r.flops, r.total_ms)) + " |")
    forward = sum(r.forward_ms or 0.0 for r in b.rows)
    backward = sum(r.backward_ms or 0.0 for r in b.rows)
    flops = sum(r.flops or 0 for r in b.rows) or None
    cells = ["**total**", _cell(forward), _cell(backward), f"**{b.total_ms:.3f}**", "100.0%"]
    lines.append("| " + " | ".join(cells + speed(flops, b.total_ms)) + " |")
    return "\n".join(lines)


def top_table(b: Breakdown) -> str:
    """The kernels (CUDA) or ops (CPU) with the most self time."""
    what = "kernel" if b.device.type == "cuda" else "op"
    lines = [f"| {what} | calls/step | ms/step | share |", "|---|---:|---:|---:|"]
    for op in b.top:
        lines.append(f"| `{_name(op.name)}` | {op.calls:g} | {op.ms:.3f} | {b.share(op.ms):.1%} |")
    return "\n".join(lines)


def summary(b: Breakdown) -> str:
    """The wall time beside the profile's, what `other` holds, and anything found wrong."""
    if b.device.type == "cuda":  # the GPU's work against the step's unprofiled wall time
        covered = f"so the GPU was busy {b.profiled_ms / b.wall_ms:.0%} of a step"
    else:  # CPU time can only be compared with the profiled steps' own wall time
        covered = f"{b.profiled_ms / b.profiled_wall_ms:.0%} of the profiled steps' wall time"
    other = contents_line(b, (OTHER, "total"))
    lines = [
        f"Wall time {b.wall_ms:.3f} ms/step (synchronised; {b.profiled_wall_ms:.3f} under the profiler). "
        f"{b.basis[0].upper()}{b.basis[1:]} in the profile {b.profiled_ms:.3f} ms/step, {covered}; the parts add up to "
        f"{b.total_ms:.3f} ms/step.",
        *([f"`other` is mostly {other}."] if other else []),
        *b.notes,
    ]
    return "\n".join(lines)


def contents_line(b: Breakdown, key: tuple[str, str], n: int = 4) -> str:
    """The few kernels or ops that make up most of one part's time, with their ms per step."""
    items = list(b.contents.get(key, {}).items())[:n]
    return ", ".join(f"`{_name(name)}` {ms:.3f} ms" for name, ms in items)


def setup_line(b: Breakdown) -> str:
    return (
        f"{b.device.type}, {b.precision}, batch {b.batch_size}, {b.image_size}×{b.image_size}, tuning "
        f"{b.tuning}; {b.warmup} warm-up step{'s' * (b.warmup != 1)}, {b.steps} timed without the profiler, "
        f"then {b.steps} profiled; times are {b.basis} per step"
    )
