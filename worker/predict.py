"""`python -m worker.predict`: what a trained job's network makes of an image, for the API (`service.api.predictor`).

One `PredictRequest` a line on stdin (`service.contracts`: the weights.pt to use, the key it is cached by, the job's
image size and the base64 of 32×32 RGB pixels, row by row), validated here with the same model; one `PredictAnswer` a
line on stdout: the 10 probabilities, or an `error` (naming the field at fault when the request was not valid).
The image is fed exactly as training feeds a test image (`worker.model.upscale`, then the network), in fp32: the
weights as trained, without the bf16 shortcut training may take for speed. The most recently used models stay
loaded, so a warm prediction is one forward pass.
"""

import sys
from collections import OrderedDict

import torch
from pydantic import ValidationError
from torch import nn

from service.contracts import PredictAnswer, PredictRequest, problems
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


def answer(models: Models, line: str) -> PredictAnswer:
    """Carry out one request; every failure is an answer, never the end of the process."""
    try:
        request = PredictRequest.model_validate_json(line)
    except ValidationError as exc:
        return PredictAnswer(error=f"invalid request: {problems(exc)}")
    try:
        model = models.get(request.key, request.weights)
        return PredictAnswer(probabilities=probabilities(model, request.pixels, request.image_size))
    except Exception as exc:
        return PredictAnswer(error=f"{type(exc).__name__}: {exc}")


def main() -> None:
    torch.set_num_threads(PREDICT_THREADS)
    models = Models()
    for line in sys.stdin:
        print(answer(models, line).model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
