"""The dashboard: static HTML shells and plain ES modules (`service/api/static/ui`), no build step.

The pages hold no data: their scripts read everything from the API with the user's own credentials (a bearer token
or the sign-in cookie), so the pages themselves need none. Every response under /ui carries a Content-Security-
Policy that lets a page load and call only this origin: no CDN, no inline script, no injected markup that runs.
"""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import error_body

UI = Path(__file__).resolve().parent.parent / "static" / "ui"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The shells and scripts change with each release and are small: revalidate (ETag) rather than guess freshness.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
_assets = StaticFiles(directory=UI, follow_symlink=False)


def _secured(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _page(name: str) -> Response:
    return _secured(FileResponse(UI / f"{name}.html", media_type="text/html"))


@router.get("/")
async def home() -> Response:
    """The dashboard is what a person opening the service's address wants."""
    return RedirectResponse("/ui/")


@router.get("/ui/")
async def jobs_page() -> Response:
    """The list of jobs, newest first, live."""
    return _page("jobs")


@router.get("/ui/jobs/{job_id}")
async def job_page(job_id: str) -> Response:
    """One job: its progress, curves, pictures and log."""
    return _page("job")


@router.get("/ui/compare")
async def compare_page() -> Response:
    """Several jobs side by side."""
    return _page("compare")


@router.get("/ui/sweeps/{sweep_id}")
async def sweep_page(sweep_id: str) -> Response:
    """One sweep: its jobs and its leaderboard."""
    return _page("sweep")


@router.get("/ui/static/{path:path}")
async def asset(path: str, request: Request) -> Response:
    """The pages' scripts, styles and the vendored chart library, with the same headers as the pages."""
    try:
        return _secured(await _assets.get_response(path, request.scope))
    except StarletteHTTPException as exc:
        body = error_body("not_found", f"no dashboard file {path!r}") if exc.status_code == 404 else None
        body = body or error_body("http_error", str(exc.detail))
        return _secured(JSONResponse(body, status_code=exc.status_code, headers=exc.headers))
