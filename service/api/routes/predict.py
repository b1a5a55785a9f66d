"""Ask a trained job what an image shows."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import artifacts, queries, records
from service.api import images
from service.api.deps import JobIdPath, ReadDatabaseDep, SettingsDep, StoreDep
from service.api.predictor import Predictor
from service.api.presenter import UPLOAD_ERRORS, errors, json_response
from service.api.schemas import Prediction, PredictionOut
from service.errors import Conflict, NotFound
from service.models import Status
from service.spec import JobSpec
from service.storage import local_copy

# The five most likely classes are answered, best first.
TOP = 5
# Trained weights fetched from a bucket, kept on this machine: 228 MB each at full size.
WEIGHTS_KEPT = 4
ERRORS = {
    **UPLOAD_ERRORS,
    **errors(
        (409, "The job has not succeeded: it has no trained weights"),
        (503, "The inference process failed or took too long; try again"),
    ),
}

router = APIRouter(prefix="/jobs/{job_id}", tags=["predict"])


async def _predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(_predictor)]


@router.post("/predict", response_model=PredictionOut, responses=ERRORS)
async def predict(
    job_id: JobIdPath,
    image: Annotated[UploadFile, File(description="A PNG or JPEG of any size; it is reduced to 32×32 as CIFAR's are.")],
    db: ReadDatabaseDep,
    store: StoreDep,
    predictor: PredictorDep,
    settings: SettingsDep,
) -> Response:
    """The five classes a succeeded job's network finds most likely in an image, best first, with probabilities."""

    def find(session: Session) -> tuple[JobSpec, str, str, list[str]]:
        job = queries.job_row(session, job_id)
        if job.status != Status.SUCCEEDED:
            raise Conflict(f"job {job_id} is {job.status}; only a succeeded job has trained weights to predict with")
        weights = queries.artifact_row(session, job_id, artifacts.WEIGHTS)
        _, epoch = queries.evaluated_epoch(session, job_id, None)
        key = f"{weights.key}@{weights.updated_at.isoformat()}"
        return JobSpec.model_validate(job.spec), key, weights.key, records.epoch_record(epoch).classes

    spec, key, stored, classes = await db.run(find)
    # From a bucket, the weights are fetched once into the cache (228 MB at full size: only a few are kept).
    try:
        path = await run_in_threadpool(local_copy, store, stored, settings.cache_dir / "weights", WEIGHTS_KEPT)
    except FileNotFoundError:
        raise NotFound(f"job {job_id}'s {artifacts.WEIGHTS} is missing from the store") from None
    # One byte past the limit is enough to know it is over.
    pixels = await predictor.prepare(await image.read(images.MAX_BYTES + 1))
    probabilities = await predictor.probabilities(path, key, spec.image_size, pixels)
    best = sorted(range(len(probabilities)), key=lambda k: -probabilities[k])[:TOP]
    predictions = [Prediction(class_=classes[k], probability=probabilities[k]) for k in best]
    return json_response(PredictionOut(job_id=job_id, predictions=predictions))
