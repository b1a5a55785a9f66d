"""What excites a filter: for every channel of conv1…conv5, the test images that drive it hardest (Zeiler & Fergus
2014). One pass over the first 1,000 of a job's test images finds them all; it runs once per job's weights, beside
other requests, and these routes answer `202` with its progress until it is done (`?wait=` holds the answer)."""

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from service.api.inside import Inside, InsideDep
from service.api.inside_network import JobNetwork, Network
from service.api.presenter import INSIDE_ERRORS as ERRORS
from service.api.presenter import PNG, Responses, errors, json_response
from service.contracts import (
    CONV_CHANNELS,
    ConvLayer,
    FilterAnswer,
    FilterRequest,
    FiltersAnswer,
    FiltersRequest,
    OverviewRequest,
)
from service.errors import InvalidRequest, ServiceUnavailable

router = APIRouter(prefix="/jobs/{job_id}", tags=["inside"])

# How often a client polling a pass in progress should come back.
RETRY_AFTER_SECONDS = 2
# The longest `?wait=`: a pass over 1,000 images at 224 px takes ~20 s on 2 busy CPU cores.
MAX_WAIT_SECONDS = 120
COMPUTING: Responses = {
    202: {"model": FiltersAnswer, "description": "The pass over the test images is still running: how far it has come"}
}
FILTER_ERRORS = {**ERRORS, **COMPUTING, **errors((422, "No such channel"))}

Wait = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the pass to finish before answering 202."),
]
Channel = Annotated[int, Path(ge=0, description="A channel of the layer: 0–63 for conv1, 0–191 for conv2, …")]


def _filters(net: Network, inside: Inside) -> FiltersRequest:
    return FiltersRequest(model=net.model, data=net.data, index=str(inside.index_path(net.key("filters"))))


def _computing(status: FiltersAnswer) -> Response:
    """202 with the pass's progress; 503 when it failed (the next request starts it again)."""
    if status.state == "failed":
        raise ServiceUnavailable(f"finding each filter's strongest images failed: {status.error}; try again")
    return json_response(status, status_code=202, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _check(layer: ConvLayer, channel: int) -> None:
    if channel >= CONV_CHANNELS[layer]:
        raise InvalidRequest(f"{layer} has channels 0–{CONV_CHANNELS[layer] - 1}; there is no channel {channel}")


@router.get("/filters", response_model=FiltersAnswer, responses=ERRORS)
async def get_filter_pass(net: JobNetwork, inside: InsideDep, wait: Wait = 0) -> Response:
    """Whether each filter's strongest test images are found: starts the pass if need be, says how far it has come."""
    return json_response(await inside.filters(_filters(net, inside), wait))


async def _one(
    net: Network, layer: ConvLayer, channel: int, wait: float, inside: Inside
) -> tuple[FilterAnswer, FilePath] | Response:
    _check(layer, channel)
    base = _filters(net, inside)
    status = await inside.filters(base, wait)
    if status.state != "ready":
        return _computing(status)
    request = FilterRequest(
        **base.model_dump(exclude={"kind"}),
        layer=layer,
        channel=channel,
        classes=net.classes,
        title=f"{net.title} · {layer} channel {channel}",
    )
    found = await inside.filter(request, net.key("filter", layer, channel))
    return found if isinstance(found, tuple) else _computing(found)


@router.get("/filters/{layer}/{channel}.png", response_class=FileResponse, responses={**PNG, **FILTER_ERRORS})
async def get_filter_image(
    net: JobNetwork, layer: ConvLayer, channel: Channel, inside: InsideDep, wait: Wait = 0
) -> Response:
    """The 9 test images that drive one channel hardest, strongest first, with its receptive field outlined in each."""
    found = await _one(net, layer, channel, wait, inside)
    return found if isinstance(found, Response) else FileResponse(found[1], media_type="image/png")


@router.get("/filters/{layer}/{channel}", response_model=FilterAnswer, responses=FILTER_ERRORS)
async def get_filter(
    net: JobNetwork, layer: ConvLayer, channel: Channel, inside: InsideDep, wait: Wait = 0
) -> Response:
    """The 9 test images that drive one channel hardest: which, their class, how hard, where, and what that sees."""
    found = await _one(net, layer, channel, wait, inside)
    return found if isinstance(found, Response) else json_response(found[0])


@router.get("/filters/{layer}.png", response_class=FileResponse, responses={**PNG, **ERRORS, **COMPUTING})
async def get_filter_overview(
    net: JobNetwork,
    layer: ConvLayer,
    inside: InsideDep,
    count: Annotated[int, Query(ge=1, le=64, description="How many channels, from channel 0.")] = 32,
    wait: Wait = 0,
) -> Response:
    """A layer's first channels, each a 3×3 block of what its strongest test images show it (its receptive field)."""
    base = _filters(net, inside)
    status = await inside.filters(base, wait)
    if status.state != "ready":
        return _computing(status)
    title = f"{net.title} · {layer}, channels 0–{count - 1}: what drives each hardest"
    request = OverviewRequest(**base.model_dump(exclude={"kind"}), layer=layer, count=count, out="", title=title)
    drawn = await inside.overview(request, net.key("overview", layer, count))
    return _computing(drawn) if isinstance(drawn, FiltersAnswer) else FileResponse(drawn, media_type="image/png")
