"""Looking inside a network trained for real (tests/trained.py: once for the session, by a real worker, at 128 px):
activations equal the convolutions done by hand, Grad-CAM equals captum's and finds where the class is, the top-9
images of a filter are the argmax found by brute force; through HTTP too (the routes themselves: test_inside_api.py)."""

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from captum.attr import LayerGradCam
from fastapi.testclient import TestClient

from service import artifacts, queries
from service.api.app import create_app
from service.config import Settings
from service.contracts import ModelRef, WeightsUsed
from service.db import make_engine, make_sessionmaker, transaction
from service.storage import make_store
from tests.trained import SPEC, learned
from worker import synthetic
from worker.data import load_dataset
from worker.inside.activations import CONV_LAYERS, feature_maps
from worker.inside.filters import TOP, build_index
from worker.inside.gradcam import explain
from worker.inside.server import Models
from worker.model import upscale

pytestmark = pytest.mark.slow

# Classes whose pattern fills the whole image (stripes, a checkerboard, dots): cut to one quadrant, they are local.
FILLING = (0, 1, 2, 3, 4, 9)
QUADRANTS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass
class Trained:
    settings: Settings
    client: TestClient
    job_id: int
    model: torch.nn.Module
    test_images: np.ndarray
    test_labels: np.ndarray


def load_model(path: Path) -> torch.nn.Module:
    used = WeightsUsed(job_id=1, source="weights", epoch=1)
    return Models().get(ModelRef(path=str(path), key="test", image_size=SPEC["image_size"], used=used))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """The session's network of tests/trained.py, in a copy of this module's; an API client over it."""
    shared = learned(tmp_path_factory, "inside")
    settings, job_id = shared.settings, shared.job_id
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        sessions = make_sessionmaker(make_engine(settings.database_url))
        with transaction(sessions) as s:
            key = queries.artifact_row(s, job_id, artifacts.WEIGHTS).key
        path = make_store(settings).local_path(key)
        assert path is not None
        data = load_dataset("synthetic", settings.data_dir, SPEC["train_samples"], SPEC["test_samples"], 0)
        yield Trained(settings, client, job_id, load_model(path), data.test_images, data.test_labels)


def network_input(pixels: np.ndarray) -> torch.Tensor:
    return upscale(torch.from_numpy(np.ascontiguousarray(pixels)), SPEC["image_size"])


def quadrant_image(k: int, quadrant: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Class `k`'s pattern and colour in one 16×16 quadrant, the dark noisy background of the synthetic set around."""
    _, colour, pattern = synthetic._CLASSES[k]
    inside = np.zeros((32, 32), dtype=bool)
    qy, qx = quadrant
    inside[qy * 16 : qy * 16 + 16, qx * 16 : qx * 16 + 16] = True
    mask = pattern(rng, 1)[0] & inside
    background = int(rng.integers(0, 81))
    noise = rng.integers(-30, 31, (32, 32))
    channels = [np.where(mask, c, background) + noise for c in colour]
    return np.clip(np.stack(channels), 0, 255).astype(np.uint8)


def test_grad_cam_puts_the_class_where_its_pattern_is(trained: Trained) -> None:
    rng = np.random.default_rng(23)
    shares = []
    for k in FILLING:
        for quadrant in QUADRANTS:
            image = quadrant_image(k, quadrant, rng)
            heat = explain(trained.model, network_input(image[None]), k).heat_map(32)
            qy, qx = quadrant
            inside = heat[qy * 16 : qy * 16 + 16, qx * 16 : qx * 16 + 16].sum()
            shares.append(float(inside / heat.sum()) if heat.sum() > 0 else 0.0)
    # A quadrant is a quarter of the image: a heat map blind to where the pattern is would put ~25 % there.
    assert np.mean(shares) > 0.45, shares
    assert np.mean(np.asarray(shares) > 0.25) >= 0.8, shares


def test_conv1_maps_are_conv2d_of_the_upscaled_input_with_the_stored_weights_relud(trained: Trained) -> None:
    x = network_input(trained.test_images[:4])
    conv1 = trained.model.get_submodule("features.0")
    assert isinstance(conv1, torch.nn.Conv2d)
    by_hand = F.relu(F.conv2d(x, conv1.weight, conv1.bias, stride=4, padding=2))
    with torch.inference_mode():
        maps = feature_maps(trained.model, x)
    assert list(maps) == list(CONV_LAYERS)
    torch.testing.assert_close(maps["conv1"], by_hand, rtol=1e-4, atol=1e-5)
    # Through HTTP: the per-channel means the API answers are the means of those maps.
    answer = trained.client.get(f"/jobs/{trained.job_id}/activations", params={"image": 2}).json()
    conv1_answer = answer["layers"][0]
    assert conv1_answer["layer"] == "conv1" and conv1_answer["shape"] == [64, 31, 31]
    expected = by_hand[2].mean(dim=(1, 2))
    torch.testing.assert_close(torch.tensor(conv1_answer["means"]), expected, rtol=1e-4, atol=1e-5)
    shown = [t["channel"] for t in conv1_answer["shown"]]
    assert shown == torch.argsort(expected, descending=True, stable=True)[:16].tolist()
    assert answer["label"] == synthetic.CLASS_NAMES[trained.test_labels[2]]


def test_grad_cam_equals_captums_layer_grad_cam(trained: Trained) -> None:
    # captum hooks the layer's output; the same network with out-of-place ReLUs gives it a tensor of its own.
    reference = copy.deepcopy(trained.model).to(memory_format=torch.contiguous_format)
    for module in reference.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    cam = LayerGradCam(reference, reference.get_submodule("features.11"))
    for k in (0, 7, 31):
        x = network_input(trained.test_images[k : k + 1])
        for target in (None, 3):
            ours = explain(trained.model, x, target)
            theirs = cam.attribute(x, target=ours.class_index, relu_attributions=True)[0, 0]
            torch.testing.assert_close(ours.cam, theirs.detach(), rtol=1e-3, atol=1e-6)
    # Through HTTP, the heat map is the same, scaled to its peak.
    answer = trained.client.get(f"/jobs/{trained.job_id}/explain", params={"image": 7, "class": "3"}).json()
    x = network_input(trained.test_images[7:8])
    theirs = cam.attribute(x, target=3, relu_attributions=True)[0, 0].detach()
    assert answer["class_name"] == synthetic.CLASS_NAMES[3] and answer["class_index"] == 3
    torch.testing.assert_close(torch.tensor(answer["cam"]), theirs / theirs.max(), rtol=1e-3, atol=1e-5)
    assert answer["cam_peak"] == pytest.approx(float(theirs.max()), rel=1e-3)


def test_the_top_nine_of_a_filter_are_the_argmax_over_the_test_images(trained: Trained) -> None:
    images = trained.test_images
    index = build_index(trained.model, images, SPEC["image_size"])
    # By brute force: one image at a time, the channel's largest activation anywhere in its map.
    with torch.inference_mode():
        strongest = {layer: [] for layer in CONV_LAYERS}
        for image in images:
            for layer, maps in feature_maps(trained.model, network_input(image[None])).items():
                strongest[layer].append(maps[0].flatten(1).max(dim=1).values)
    for layer in CONV_LAYERS:
        values = torch.stack(strongest[layer]).numpy()  # (images, channels)
        top = index.layers[layer]
        for channel in range(0, values.shape[1], 7):
            column = values[:, channel]
            ranked = np.sort(column)[::-1][:TOP]
            np.testing.assert_allclose(top.values[channel], ranked, rtol=1e-4, atol=1e-5)
            # Each image named really has that response, and none left out has a larger one.
            np.testing.assert_allclose(column[top.indices[channel]], top.values[channel], rtol=1e-4, atol=1e-5)
            outside = np.delete(column, top.indices[channel])
            assert outside.max(initial=0) <= top.values[channel][-1] + 1e-5
    # Through HTTP, the same nine, with where they are strongest.
    job = trained.job_id
    status = trained.client.get(f"/jobs/{job}/filters", params={"wait": 120}).json()
    assert status == {**status, "state": "ready", "done": len(images), "total": len(images)}
    answer = trained.client.get(f"/jobs/{job}/filters/conv3/14").json()
    assert [i["test_index"] for i in answer["images"]] == index.layers["conv3"].indices[14].tolist()
    assert answer["images_looked_at"] == len(images)
    first = answer["images"][0]
    assert first["label"] == synthetic.CLASS_NAMES[trained.test_labels[first["test_index"]]]
    assert list(first["position"]) == index.layers["conv3"].positions[14][0].tolist()
