"""Jobs side by side: their specs, what sets them apart, and one chart with a line per job."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from service.api import compare
from service.api.deps import ReadDatabaseDep, RendererDep
from service.api.files import send_picture
from service.api.presenter import PNG, json_response
from service.api.schemas import CompareOut
from service.contracts import CompareMetric

# Documents what `compare.parse_ids` accepts (up to MAX_JOBS ids); the route itself checks it, to say what is wrong.
IDS_PATTERN = rf"^[0-9]{{1,19}}(,[0-9]{{1,19}}){{0,{compare.MAX_JOBS - 1}}}$"
Ids = Annotated[
    str,
    Query(
        description=f"Job ids separated by commas, at most {compare.MAX_JOBS}; e.g. `1,2,3`.",
        max_length=1000,
        json_schema_extra={"pattern": IDS_PATTERN},
        examples=["1,2,3"],
    ),
]

router = APIRouter(tags=["compare"])


@router.get("/compare", response_model=CompareOut)
async def compare_jobs(ids: Ids, db: ReadDatabaseDep) -> Response:
    """For each job: its spec, the spec fields in which the jobs differ, and its losses and test accuracy per epoch."""
    wanted = compare.parse_ids(ids)
    return json_response(await db.run(lambda s: compare.read(s, wanted)))


@router.get("/compare.png", response_class=FileResponse, responses=PNG)
async def compare_chart(
    ids: Ids, db: ReadDatabaseDep, renderer: RendererDep, metric: CompareMetric = "test_accuracy"
) -> Response:
    """One line per job of a metric over the epochs, each labelled by what sets it apart ("sgd lr 1e-2")."""
    wanted = compare.parse_ids(ids)
    request = compare.chart_request(await db.run(lambda s: compare.read(s, wanted)), metric)
    # The request holds every number drawn: the picture is redrawn exactly when one of them changes.
    path = await renderer.draw(request, request.model_dump_json(), ".png")
    return await send_picture(path, "image/png")
