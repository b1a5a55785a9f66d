"""Swagger UI and ReDoc from the service's own pinned copies (`service/api/static/docs`), so they work offline."""

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

OPENAPI_URL = "/openapi.json"
ASSETS = "/static/docs"
TITLE = "alexnet-jobs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# ReDoc's menu ends with Redocly's logo, fetched from cdn.redoc.ly, and the bundle has no option to leave it out.
# The page may load pictures and fonts from this origin only, so the browser never asks the CDN (the logo's own
# error handler then hides it); the pinned bundle stays as published.
REDOC_POLICY = "img-src 'self' data:; font-src 'self' data:"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI over the service's own OpenAPI document."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} — Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    """Where Swagger UI's OAuth2 sign-in comes back to."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """ReDoc over the service's own OpenAPI document, asking no other origin for anything."""
    page = get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} — ReDoc",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon-32x32.png",
        with_google_fonts=False,  # the fonts would come from Google: the page uses the browser's own
    )
    page.headers["Content-Security-Policy"] = REDOC_POLICY
    return page
