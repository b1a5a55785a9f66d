"""Look inside a job's network: one image's activations layer by layer, and where the network looked for a class
(Grad-CAM at conv5, gradient saliency); the image is one of the job's test images or an upload. Each as a picture and
as numbers. What excites each filter is in `service.api.routes.filters`."""

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from service import queries
from service.api import images
from service.api.deps import JobIdPath, ReadDatabaseDep
from service.api.inside import Inside, InsideDep, Mistake, TestImages, lifespan
from service.api.inside_network import JobNetwork, Network
from service.api.predictor import Predictor
from service.api.presenter import INSIDE_ERRORS as ERRORS
from service.api.presenter import PNG, UPLOAD_ERRORS, errors, json_response
from service.contracts import (
    ActivationsAnswer,
    ActivationsRequest,
    ExplainAnswer,
    ExplainRequest,
    ImageRef,
)
from service.errors import InvalidRequest, NotFound
from service.spec import TEST_SIZE

router = APIRouter(prefix="/jobs/{job_id}", tags=["inside"], lifespan=lifespan)

UPLOADS = {**UPLOAD_ERRORS, **ERRORS, **errors((422, f"{UPLOAD_ERRORS[422]['description']}; or no such class"))}

TestImage = Annotated[
    int,
    Query(ge=0, lt=TEST_SIZE, description="A test image: its position in the job's own test subset (0 first)."),
]
ClassName = Annotated[
    str | None,
    Query(
        alias="class", max_length=100, description="The class to explain (a name, or its number 0–9); the predicted."
    ),
]
ImageUpload = Annotated[
    UploadFile, File(description="A PNG or JPEG of any size; it is reduced to 32×32 as CIFAR's are, as predict does.")
]
ClassField = Annotated[
    str | None, Form(alias="class", max_length=100, description="The class to explain; the predicted.")
]


async def _predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(_predictor)]


async def _test_image(net: JobNetwork, image: TestImage) -> ImageRef:
    if image >= net.test_images:
        raise InvalidRequest(
            f"the job has {net.test_images} test images (0–{net.test_images - 1}); there is no {image}"
        )
    return ImageRef(test_index=image)


async def _upload(image: ImageUpload, predictor: PredictorDep) -> ImageRef:
    """An upload checked and reduced as predict does it (`Predictor.prepare`)."""
    pixels = await predictor.prepare(await image.read(images.MAX_BYTES + 1))  # a byte past the limit tells
    return ImageRef(pixels=base64.b64encode(pixels).decode())


# The image to look inside with: one of the job's test images (`?image=K`), or an upload (multipart `image`).
TestImageRef = Annotated[ImageRef, Depends(_test_image)]
UploadRef = Annotated[ImageRef, Depends(_upload)]


def _key(net: Network, kind: str, image: ImageRef, class_name: str | None = None) -> str:
    what = f"test {image.test_index}" if image.pixels is None else f"pixels {image.pixels}"
    return net.key(kind, what, class_name)


async def _activations(inside: Inside, net: Network, image: ImageRef) -> tuple[ActivationsAnswer | ExplainAnswer, Any]:
    request = ActivationsRequest(model=net.model, data=net.data, image=image, classes=net.classes, title=net.title)
    return await inside.look(request, _key(net, "activations", image))


async def _explain(
    inside: Inside, net: Network, image: ImageRef, class_name: str | None
) -> tuple[ActivationsAnswer | ExplainAnswer, Any]:
    request = ExplainRequest(
        model=net.model, data=net.data, image=image, classes=net.classes, title=net.title, class_name=class_name
    )
    return await inside.look(request, _key(net, "explain", image, class_name))


@router.get("/activations", response_model=ActivationsAnswer, responses=ERRORS)
async def get_activations(net: JobNetwork, image: TestImageRef, inside: InsideDep) -> Response:
    """A test image through conv1…conv5: every channel's mean activation, the strongest 16 per layer, the top 5."""
    answer, _ = await _activations(inside, net, image)
    return json_response(answer)


@router.get("/activations.png", response_class=FileResponse, responses={**PNG, **ERRORS})
async def get_activations_image(net: JobNetwork, image: TestImageRef, inside: InsideDep) -> Response:
    """A test image as the network sees it, then a row per conv layer of its 16 strongest channels' maps."""
    _, picture = await _activations(inside, net, image)
    return FileResponse(picture, media_type="image/png")


@router.post("/activations", response_model=ActivationsAnswer, responses=UPLOADS)
async def post_activations(net: JobNetwork, image: UploadRef, inside: InsideDep) -> Response:
    """Your image through conv1…conv5, as numbers: as `GET …/activations` answers for a test image."""
    answer, _ = await _activations(inside, net, image)
    return json_response(answer)


@router.post("/activations.png", response_class=FileResponse, responses={**PNG, **UPLOADS})
async def post_activations_image(net: JobNetwork, image: UploadRef, inside: InsideDep) -> Response:
    """Your image through conv1…conv5, as a picture: as `GET …/activations.png` draws a test image."""
    _, picture = await _activations(inside, net, image)
    return FileResponse(picture, media_type="image/png")


@router.get("/explain", response_model=ExplainAnswer, responses=ERRORS)
async def get_explanation(
    net: JobNetwork, image: TestImageRef, inside: InsideDep, class_name: ClassName = None
) -> Response:
    """Where the network looked in a test image for a class: the Grad-CAM heat map at conv5 as numbers, the top 5."""
    answer, _ = await _explain(inside, net, image, class_name)
    return json_response(answer)


@router.get("/explain.png", response_class=FileResponse, responses={**PNG, **ERRORS})
async def get_explanation_image(
    net: JobNetwork, image: TestImageRef, inside: InsideDep, class_name: ClassName = None
) -> Response:
    """A test image, Grad-CAM's heat map over it for a class (the predicted one), and plain gradient saliency."""
    _, picture = await _explain(inside, net, image, class_name)
    return FileResponse(picture, media_type="image/png")


@router.post("/explain", response_model=ExplainAnswer, responses=UPLOADS)
async def post_explanation(
    net: JobNetwork, image: UploadRef, inside: InsideDep, class_name: ClassField = None
) -> Response:
    """Where the network looked in your image for a class, as numbers: as `GET …/explain` answers for a test image."""
    answer, _ = await _explain(inside, net, image, class_name)
    return json_response(answer)


@router.post("/explain.png", response_class=FileResponse, responses={**PNG, **UPLOADS})
async def post_explanation_image(
    net: JobNetwork, image: UploadRef, inside: InsideDep, class_name: ClassField = None
) -> Response:
    """Where the network looked in your image for a class, as a picture: as `GET …/explain.png` draws a test image."""
    _, picture = await _explain(inside, net, image, class_name)
    return FileResponse(picture, media_type="image/png")


@router.get("/test-images", response_model=TestImages, responses=ERRORS)
async def get_test_images(job_id: JobIdPath, net: JobNetwork, db: ReadDatabaseDep, inside: InsideDep) -> Response:
    """The job's test images by class, and those its latest evaluated epoch got wrong: which to look inside with.
    A job with no weights yet has nothing to look inside with: 409."""

    def read(session: Session) -> tuple[int | None, dict[str, Any]]:
        try:
            _, row = queries.evaluated_epoch(session, job_id, None)
        except NotFound:  # a checkpoint taken before the first evaluation: no mistakes to list
            return None, {}
        return row.epoch, row.details.get("mistakes") or {}

    epoch, mistakes = await db.run(read)
    found = await inside.labels(net.data)
    wrong = [
        Mistake(test_index=k, true=found.classes[found.labels[k]], predicted=found.classes[p])
        for k, p in zip(mistakes.get("indices", []), mistakes.get("predicted", []), strict=False)
        if k < len(found.labels)
    ]
    return json_response(
        TestImages(
            job_id=job_id,
            count=len(found.labels),
            classes=found.classes,
            labels=found.labels,
            epoch=epoch,
            mistakes=wrong,
        )
    )
