"""A page of another origin, in a real browser (Debian's Chromium through Playwright), tries to queue and cancel
jobs on the API under uvicorn: with form posts and `fetch`, without a token and with the sign-in cookie (which a
page on another port of the same host gets sent: SameSite cookies do not tell ports apart). Nothing it sends is
taken; the same browser on the service's own pages still writes."""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from bench.processes import API_COMMAND, STARTED, serving
from service.api.auth import SESSION_COOKIE
from tests.helpers import make_settings, sqlite_database, total_jobs

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")

TOKEN = "other-origin-token"
TIMEOUT_MS = 30_000
# The other origin's page: two forms with no fields (an empty form post queues the default job unless refused),
# each posting into a frame of its own so that the page stays.
PAGE = """<!doctype html><title>elsewhere</title>
<form id="queue" method="post" action="{api}/jobs" target="one"></form>
<form id="cancel" method="post" action="{api}/jobs/{job_id}/cancel" target="two"></form>
<iframe name="one"></iframe><iframe name="two"></iframe>"""
# What a script of that page can send without a CORS preflight (which the API never grants): a "simple" request.
SIMPLE_FETCH = """([url, body]) => fetch(url, {method: "POST", mode: "no-cors", credentials: "include", body,
    headers: {"Content-Type": "text/plain"}}).then(() => "sent", (e) => "failed: " + e)"""
JSON_FETCH = """(url) => fetch(url, {method: "POST", credentials: "include", body: "{}",
    headers: {"Content-Type": "application/json"}}).then((r) => r.status, (e) => "failed: " + e)"""


@dataclass
class Api:
    base: str
    client: httpx.Client
    token: str


@pytest.fixture(scope="module", params=["", TOKEN], ids=["no token", "token"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API under uvicorn, without a token and with one; stopped here, not by each test's cleanup."""
    folder = tmp_path_factory.mktemp("origin")
    settings = make_settings(folder, sqlite_database(folder), api_token=request.param)
    with serving(API_COMMAND, settings, folder / "api.log") as (process, base):
        STARTED.remove(process)
        headers = {"authorization": f"Bearer {TOKEN}"} if request.param else {}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
            yield Api(base, client, request.param)


@pytest.fixture
def elsewhere(api: Api) -> Iterator[str]:
    """Another origin, as a browser sees it: a web server of its own on another port of 127.0.0.1, serving PAGE."""
    job_id = api.client.post("/jobs", json={"name": "to cancel"}).json()["id"]
    page = PAGE.format(api=api.base, job_id=job_id).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page.html"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Seen:
    """The requests the browser sent to the API: method, path, status, and whether the sign-in cookie went along."""

    method: str
    path: str
    status: int
    cookie: bool


def posted(page: "playwright_api.Page", api: Api, action: Callable[[], object]) -> Seen:
    """What became of the POST to the API that `action` makes the page send."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.startswith(api.base)) as info:
        action()
    response = info.value
    cookie = SESSION_COOKIE in response.request.all_headers().get("cookie", "")
    return Seen("POST", urlsplit(response.url).path, response.status, cookie)


def test_a_page_of_another_origin_queues_and_cancels_nothing(
    browser: "playwright_api.Browser", api: Api, elsewhere: str
) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        if api.token:  # signed in as the dashboard does it, on the API's own origin
            assert context.request.post(f"{api.base}/session", data={"token": api.token}).status == 204
        queued = [j["id"] for j in api.client.get("/jobs", params={"status": "queued"}).json()["items"]]
        before = total_jobs(api.client)

        page = context.new_page()
        page.goto(elsewhere)
        seen = [
            posted(page, api, lambda: page.locator("#queue").evaluate("form => form.submit()")),
            posted(page, api, lambda: page.locator("#cancel").evaluate("form => form.submit()")),
            posted(page, api, lambda: page.evaluate(SIMPLE_FETCH, [f"{api.base}/jobs", ""])),
            posted(page, api, lambda: page.evaluate(SIMPLE_FETCH, [f"{api.base}/jobs", '{"name": "elsewhere"}'])),
        ]
        # JSON needs the API's leave first (a CORS preflight), which it never gives: the post is not even sent.
        assert str(page.evaluate(JSON_FETCH, f"{api.base}/jobs")).startswith("failed")

        assert [(s.path.rsplit("/", 1)[-1], s.status) for s in seen] == [
            ("jobs", 403),
            ("cancel", 403),
            ("jobs", 403),
            ("jobs", 403),
        ], seen
        assert total_jobs(api.client) == before
        assert [j["id"] for j in api.client.get("/jobs", params={"status": "queued"}).json()["items"]] == queued
        if api.token:  # the form posts carried the sign-in cookie: only the origin check stood in their way
            assert seen[0].cookie and seen[1].cookie, seen

        # The same browser, on the service's own page, writes as before.
        own = context.new_page()
        own.goto(f"{api.base}/ui/")
        assert own.evaluate(JSON_FETCH, f"{api.base}/jobs") == 201
        assert total_jobs(api.client) == before + 1
    finally:
        context.close()
