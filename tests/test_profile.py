"""`python -m bench.profile`: a training step's time by layer, forward and backward, from torch.profiler.

On the CPU in fp32 at 63×63 with batches of 4 (AlexNet's smallest input), one warm-up step, then one or two
timed and as many profiled: the whole file takes 10–20 s on two cores. A GPU's profile has the same events and
the kernels besides; the last test makes such a profile by hand, since no GPU runs the tests.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import DeviceType

from bench import profile
from bench.attribution import attribute, marked_step
from bench.breakdown import Breakdown, Row, part_flops
from bench.profile import profile_step
from service.spec import JobSpec
from worker.batches import DeviceImages
from worker.data import make_synthetic
from worker.model import build_model, make_optimizer
from worker.train import train_step
from worker.tuning import Tuning

CPU = torch.device("cpu")
BATCH, SIZE = 4, 63
CONVS, FCS = ["conv1", "conv2", "conv3", "conv4", "conv5"], ["fc1", "fc2", "fc3"]


def breakdown(tuning: str = "", steps: int = 2) -> Breakdown:
    return profile_step(CPU, "fp32", BATCH, SIZE, warmup=1, steps=steps, tuning=Tuning.parse(tuning), top=10)


@pytest.fixture(scope="module")
def plain() -> Breakdown:
    return breakdown()


def row(b: Breakdown, part: str) -> Row:
    return next(r for r in b.rows if r.part == part)


def ops(b: Breakdown, part: str, phase: str) -> set[str]:
    return set(b.contents.get((part, phase), {}))


def test_every_layer_has_forward_and_backward_time_of_its_own_ops(plain: Breakdown) -> None:
    for part in CONVS + FCS:
        r = row(plain, part)
        assert r.forward_ms is not None and r.forward_ms > 0, part
        assert r.backward_ms is not None and r.backward_ms > 0, part  # conv1's: the weight's gradient alone
    assert row(plain, "batch preparation").total_ms > 0
    assert row(plain, "optimizer").total_ms > 0
    assert "aten::_fused_adam_" in ops(plain, "optimizer", "total")
    # Backward work lands on the layer whose forward made it, and nowhere else.
    where_conv_backward = {key for key, c in plain.contents.items() if "aten::convolution_backward" in c}
    assert where_conv_backward == {(part, "backward") for part in CONVS}
    where_mm = {key for key, c in plain.contents.items() if "aten::mm" in c}  # a Linear's gradients
    assert where_mm == {(part, "backward") for part in FCS}
    assert {"aten::threshold_backward", "aten::max_pool2d_with_indices_backward"} <= ops(
        plain, "elementwise and pooling", "backward"
    )
    assert "aten::_log_softmax_backward_data" in ops(plain, "loss", "backward")
    assert "aten::upsample_bilinear2d" in ops(plain, "batch preparation", "total")


def test_the_parts_add_up_to_the_profile_and_match_the_wall_time(plain: Breakdown) -> None:
    assert [r.part for r in plain.rows] == [
        "batch preparation",
        *CONVS,
        *FCS,
        "elementwise and pooling",
        "loss",
        "optimizer",
        "other",
    ]
    # profiled_ms is the top-level events' time, the parts their events' self times: nothing counted twice
    assert plain.total_ms == pytest.approx(plain.profiled_ms, rel=1e-6)
    # The CPU's events cover the profiled steps: nearly all of their wall time, and never much more.
    assert 0.3 <= plain.total_ms / plain.profiled_wall_ms <= 1.2
    # The steps timed without the profiler: much the same (loosely: other processes share the cores).
    assert 0.2 <= plain.wall_ms / plain.profiled_wall_ms <= 5
    assert math.fsum(plain.share(r.total_ms) for r in plain.rows) == pytest.approx(1.0)
    assert row(plain, "other").total_ms < 0.25 * plain.total_ms  # little is left unattributed


def test_top_ops_are_sorted_by_self_time(plain: Breakdown) -> None:
    assert 0 < len(plain.top) <= 10
    assert [op.ms for op in plain.top] == sorted((op.ms for op in plain.top), reverse=True)
    assert all(op.calls > 0 for op in plain.top)
    assert not any(op.name.startswith("bench.profile") for op in plain.top)  # our ranges are not ops


def test_a_padded_conv1_is_still_attributed_to_conv1() -> None:
    b = breakdown("conv1_channels=4", steps=1)
    conv1 = row(b, "conv1")
    assert conv1.forward_ms and conv1.forward_ms > 0 and conv1.backward_ms and conv1.backward_ms > 0
    assert "aten::constant_pad_nd" in ops(b, "conv1", "forward")  # the weight padded to 4 channels
    assert any("ConstantPadNdBackward0" in name for name in ops(b, "conv1", "backward"))
    assert not any("ConstantPadNd" in name for name in ops(b, "other", "total"))
    assert conv1.flops == sum(part_flops(BATCH, SIZE, Tuning.parse("conv1_channels=4"))["conv1"])


def test_layer_flops_are_the_convolutions_and_matmuls_arithmetic() -> None:
    flops = part_flops(BATCH, SIZE, Tuning())
    conv2 = 2 * BATCH * 192 * 7 * 7 * 64 * 5 * 5  # 15×15 after conv1, 7×7 after the pool; 5×5 kernels
    assert flops["conv2"] == (conv2, 2 * conv2)  # backward: the input's gradient and the weight's
    conv1 = 2 * BATCH * 64 * 15 * 15 * 3 * 11 * 11
    assert flops["conv1"] == (conv1, conv1)  # the images need no gradient: the weight's alone
    fc1 = 2 * BATCH * 256 * 6 * 6 * 4096
    assert flops["fc1"] == (fc1, 2 * fc1)
    padded = part_flops(BATCH, SIZE, Tuning.parse("conv1_channels=4"))
    assert padded["conv1"] == (conv1 * 4 // 3, conv1 * 4 // 3)  # the zero channels are multiplied too


def test_the_marked_step_is_the_engines_step() -> None:
    cfg = JobSpec(batch_size=BATCH, image_size=SIZE, seed=0, device="cpu", precision="fp32")
    data = make_synthetic(8, 1, 0)
    images = DeviceImages(torch.from_numpy(data.train_images), SIZE)
    labels = torch.from_numpy(data.train_labels)
    index = torch.tensor([5, 0, 3, 6])
    model = build_model(CPU, 0).to(memory_format=torch.channels_last)
    initial = {name: w.clone() for name, w in model.state_dict().items()}
    weights = []
    for marked in (False, True):
        model.load_state_dict(initial)
        optimizer = make_optimizer(cfg, model, CPU)
        torch.manual_seed(1)  # the same dropout masks
        if marked:
            marked_step(model, optimizer, images, labels, index, bf16=False)
        else:
            train_step(model, optimizer, images.batch(index), labels[index], bf16=False)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_the_command_prints_both_tables_and_writes_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "step.json"
    argv = ["--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--image-size", "63"]
    argv += ["--warmup", "1", "--steps", "1", "--top", "5", "--trace", str(trace)]
    monkeypatch.setattr(sys, "argv", ["python -m bench.profile", *argv])
    profile.main()
    out = capsys.readouterr().out
    assert "| part | forward ms/step | backward ms/step | total ms/step | share |" in out
    assert "| **total** |" in out and "| op | calls/step | ms/step | share |" in out
    assert "profiled step 1/1" in out
    names = {e.get("name") for e in json.loads(trace.read_text())["traceEvents"]}
    assert {"bench.profile: conv1", "bench.profile: fc3", "bench.profile: step"} <= names


def event(
    name: str, span: tuple[int, int], thread: int = 1, parent: FunctionEvent | None = None, **kw: Any
) -> FunctionEvent:
    """A profiler event as torch.profiler makes them from a CUDA trace (its kernels are added by the caller)."""
    e = FunctionEvent(id=0, name=name, thread=thread, start_us=span[0], end_us=span[1], use_device="cuda", **kw)
    if parent is not None:
        parent.append_cpu_child(e)
        e.set_cpu_parent(parent)
    return e


def test_on_cuda_each_kernel_counts_once_for_the_op_that_launched_it() -> None:
    """The GPU's events can only be made by hand here: the same logic, with kernels in place of CPU time."""
    kernel = {"device_type": DeviceType.CUDA}
    step = event("bench.profile: step", (0, 100), is_user_annotation=True)
    conv1 = event("bench.profile: conv1", (1, 20), parent=step, is_user_annotation=True)
    conv2d = event("aten::conv2d", (2, 19), parent=conv1, sequence_nr=7)
    convolution = event("aten::convolution", (3, 18), parent=conv2d, sequence_nr=7)
    convolution.append_kernel("implicit_gemm", 0, 30)
    conv1.append_kernel("bench.profile: conv1", 0, 40)  # the range's mirror on the GPU, if linked to it
    # The backward runs on the autograd engine's thread for the device.
    node = event("autograd::engine::evaluate_function: ConvolutionBackward0", (50, 60), thread=2, sequence_nr=7)
    event("aten::convolution_backward", (51, 59), thread=2, parent=node).append_kernel("wgrad", 0, 70)
    store = event("autograd::engine::evaluate_function: torch::autograd::AccumulateGrad", (61, 62), thread=2)
    event("aten::copy_", (61, 62), thread=2, parent=store).append_kernel("copy", 0, 5)
    device = [
        event("implicit_gemm", (5, 35), **kernel),
        event("wgrad", (60, 130), **kernel),
        event("copy", (130, 135), **kernel),
        event("bench.profile: conv1", (5, 45), is_user_annotation=True, **kernel),
        event("memset", (140, 142), **kernel),  # launched by no op that the profiler saw
    ]
    cpu = [step, conv1, conv2d, convolution, node, *node.cpu_children, store, *store.cpu_children]
    contents, profiled, ops, notes = attribute(cpu + device, cuda=True, steps=1, top=3)
    assert profiled == pytest.approx(0.107)  # 30 + 70 + 5 + 2 µs of kernels; the mirrored range is not work
    assert sum(contents[("conv1", "forward")].values()) == pytest.approx(0.030)
    assert contents[("conv1", "backward")] == pytest.approx({"wgrad": 0.070, "copy": 0.005})
    assert sum(contents[("other", "total")].values()) == pytest.approx(0.002)
    assert [op.name for op in ops] == ["wgrad", "implicit_gemm", "copy"]
    assert notes == []
