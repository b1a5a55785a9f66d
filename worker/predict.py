"""`python -m worker.predict`: what a trained job's network makes of an image, for the API (`service.api.predictor`).

One JSON request a line on stdin: `{"id", "weights": <weights.pt>, "key", "image_size", "pixels": <base64 of
32×32 RGB, row by row>}`; one answer a line on stdout: `{"id", "probabilities": [10 floats]}` or `{"id", "error"}`.
The image is fed exactly as training feeds a test image (`worker.model.upscale`, then the network), in fp32: the
weights as trained, without the bf16 shortcut training may take for speed. The most recently used models stay
loaded, so a warm prediction is one forward pass.
"""

import base64
import json
import sys
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from worker.model import build_model, upscale
from worker.synthetic import SIDE

# Each model is 228 MB of fp32 weights: three stay under 700 MB, enough to try an image on a sweep's best few.
MODELS_KEPT = 3
# One image is too little work to share between cores, and the cores are usually training: on 2 busy cores a second
# thread made a 64 px prediction wait ~135 ms for its partner, against a steady ~15 ms on one.
PREDICT_THREADS = 1


class Models:
    """Trained networks by key, the least recently used dropped beyond MODELS_KEPT."""

    def __init__(self, kept: int = MODELS_KEPT) -> None:
        self.kept = kept
        self.loaded: OrderedDict[str, nn.Module] = OrderedDict()

    def get(self, key: str, weights: str) -> nn.Module:
        """The model saved at `weights`, loaded once per `key`."""
        if key in self.loaded:
            self.loaded.move_to_end(key)
            return self.loaded[key]
        model = load(weights)
        self.loaded[key] = model
        while len(self.loaded) > self.kept:
            self.loaded.popitem(last=False)
        return model


def load(weights: str) -> nn.Module:
    """The AlexNet whose trained `state_dict` is in `weights`, on the CPU, ready for inference."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    # Built on the meta device (no memory, no random init: ~0.5 s saved), then given the trained tensors.
    model = build_model(torch.device("meta"), seed=0)
    model.load_state_dict(state, assign=True)
    return model.eval().to(memory_format=torch.channels_last)


@torch.inference_mode()
def probabilities(model: nn.Module, pixels: bytes, image_size: int) -> list[float]:
    """Each class's probability for one 32×32 RGB image given as bytes (row by row, R G B)."""
    image = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(SIDE, SIDE, 3)
    batch = image.permute(2, 0, 1).unsqueeze(0)  # (1, 3, 32, 32): CIFAR's layout, as training holds its images
    x = upscale(batch, image_size).contiguous(memory_format=torch.channels_last)
    return torch.softmax(model(x).float(), dim=1)[0].tolist()


def answer(models: Models, line: str) -> dict[str, Any]:
    """Carry out one request; every failure is an answer, never the end of the process."""
    request: dict[str, Any] = {}
    try:
        request = json.loads(line)
        pixels = base64.b64decode(request["pixels"], validate=True)
        if len(pixels) != SIDE * SIDE * 3:
            raise ValueError(f"expected {SIDE}×{SIDE} RGB ({SIDE * SIDE * 3} bytes), got {len(pixels)} bytes")
        model = models.get(request["key"], request["weights"])
        return {"id": request.get("id"), "probabilities": probabilities(model, pixels, int(request["image_size"]))}
    except Exception as exc:
        return {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    torch.set_num_threads(PREDICT_THREADS)
    models = Models()
    for line in sys.stdin:
        print(json.dumps(answer(models, line)), flush=True)


if __name__ == "__main__":
    main()
