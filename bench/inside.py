"""`python -m bench.inside`: how fast the API looks inside a network, as its routes do it (`service.api.inside` →
`python -m worker.inside.server`), on a model of the real size (untrained weights cost what trained ones do):

- one image's activations and Grad-CAM (numbers and pictures, as the dashboard asks for both): cold, the process
  starting and loading the model; then warm, a new test image each time (so that nothing comes from the cache);
- the filter pass over the test images (the strongest nine of every channel of conv1…conv5), with its progress as
  the API reports it, then a filter's picture and a layer's overview.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import torch

from service.api.inside import Inside
from service.contracts import (
    ActivationsRequest,
    DatasetRef,
    ExplainRequest,
    FilterRequest,
    FiltersRequest,
    ImageRef,
    ModelRef,
    OverviewRequest,
    WeightsUsed,
)
from worker.model import build_model


async def run(size: int, images: int, repeats: int, folder: Path) -> None:
    weights = folder / "weights.pt"
    torch.save(build_model(torch.device("cpu"), seed=0).state_dict(), weights)
    used = WeightsUsed(job_id=1, source="weights", epoch=1)
    model = ModelRef(path=str(weights), key="bench", image_size=size, used=used)
    data = DatasetRef(dataset="synthetic", data_dir=str(folder), train_samples=1, test_samples=images, seed=0)
    inside = Inside(folder / "cache")
    title = f"bench · {size} px"

    async def look(k: int) -> tuple[float, float]:
        image = ImageRef(test_index=k)
        began = time.perf_counter()
        await inside.look(ActivationsRequest(model=model, data=data, image=image, title=title), f"a {k}")
        middle = time.perf_counter()
        await inside.look(ExplainRequest(model=model, data=data, image=image, title=title), f"e {k}")
        return middle - began, time.perf_counter() - middle

    try:
        began = time.perf_counter()
        cold = await look(0)
        print(f"cold (process start, torch import, model load, first image): {time.perf_counter() - began:.2f} s")
        print(f"  of which activations {cold[0]:.2f} s, Grad-CAM {cold[1]:.2f} s")
        warm = [await look(k) for k in range(1, repeats + 1)]
        both = [a + e for a, e in warm]
        print(
            f"warm, {size} px, median of {repeats} (numbers and picture each): activations "
            f"{statistics.median(a for a, _ in warm):.2f} s, Grad-CAM {statistics.median(e for _, e in warm):.2f} s, "
            f"both {statistics.median(both):.2f} s (slowest {max(both):.2f} s)"
        )

        index = str(inside.index_path("bench"))
        request = FiltersRequest(model=model, data=data, index=index)
        began = time.perf_counter()
        while (status := await inside.filters(request, wait=0)).state == "computing":
            print(f"  filter pass: {status.done:,} of {status.total:,} images, {status.seconds:.1f} s", flush=True)
            await asyncio.sleep(2)
        assert status.state == "ready", status
        print(f"filter pass over {status.total:,} test images at {size} px: {status.seconds:.1f} s in the process")
        base = request.model_dump(exclude={"kind"})
        began = time.perf_counter()
        await inside.filter(FilterRequest(**base, layer="conv5", channel=0, title=title), "f")
        print(f"one filter's nine images, a picture: {time.perf_counter() - began:.2f} s")
        began = time.perf_counter()
        await inside.overview(OverviewRequest(**base, layer="conv3", count=32, out="", title=title), "o")
        print(f"a layer's overview, 32 channels: {time.perf_counter() - began:.2f} s")
    finally:
        await inside.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224, help="the job's image size (default: the lecture's 224)")
    parser.add_argument("--images", type=int, default=1000, help="test images in the filter pass (default 1,000)")
    parser.add_argument("--repeats", type=int, default=10, help="warm images timed (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args.size, args.images, args.repeats, Path(folder)))


if __name__ == "__main__":
    main()
