"""The dashboard's browser tests share one headless Chromium (Debian's, through Playwright) and one API under
uvicorn for the session, every request to another origin aborted: what loads must come from the service itself.

A pytest plugin (tests/conftest.py loads it): the fixtures `browser`, `dashboard_settings`, `dashboard` (the API's
base URL), `dashboard_api` (a client of it) and `tab`; and `open_tab`, a page watched for errors, dialogs and
requests elsewhere.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from bench.processes import API_COMMAND, CHROMIUM, CHROMIUM_ARGS, ROOT, STARTED, serving
from service.config import Settings
from tests.helpers import make_settings, sqlite_database

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page, Route

# Two steps an epoch on 63×63 images (AlexNet's smallest input): the 57 M parameters' update is most of a step on a
# CPU. Two epochs, so that the slider has epochs to move between and the compared lines have a slope.
TINY = {
    "dataset": "synthetic",
    "image_size": 63,
    "batch_size": 32,
    "train_samples": 64,
    "test_samples": 32,
    "device": "cpu",
    "epochs": 2,
}
SCREENSHOTS = ROOT / "var" / "screenshots"
TIMEOUT_MS = 60_000  # what the page does on its own: milliseconds, but the two CPU cores are shared
# What waits for training: an epoch of TINY takes seconds, but tens of them on two cores busy with other tests.
TRAINING_S = 300


@pytest.fixture(scope="session")
def browser() -> Iterator["Browser"]:
    """One headless Chromium for the session; missing, its tests are skipped, except under CI, where they fail."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but there is no browser at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    # expect() waits 5 s by default, whatever the context's timeout: too little for a picture the API draws on
    # request while other tests load the two cores.
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def dashboard_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings of the dashboard's API and of the workers that train for it: a database of their own."""
    folder = tmp_path_factory.mktemp("browser")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="session")
def dashboard(dashboard_settings: Settings) -> Iterator[str]:
    """The API for the session (its log beside the artifacts), kept off the list of processes each test's cleanup
    kills, stopped here; its base URL."""
    log = Path(dashboard_settings.artifact_dir).parent / "api.log"
    with serving(API_COMMAND, dashboard_settings, log) as (process, base):
        STARTED.remove(process)
        yield base


@pytest.fixture
def dashboard_api(dashboard: str) -> Iterator[httpx.Client]:
    """A client of the session's dashboard API."""
    with httpx.Client(base_url=dashboard, timeout=30) as client:
        yield client


@dataclass
class Tab:
    """A page in a fresh browser context, and what went wrong in it."""

    page: "Page"
    base: str
    errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    def assert_clean(self, refused: tuple[int, str] | None = None) -> None:
        """Nothing was asked of another origin, no script failed or logged an error, no dialog opened; but for the
        one `refused` (status, path) the test brought about, which the browser reports as a failed request."""
        if refused:
            status, path = refused
            self.errors = [e for e in self.errors if not (f" {status} " in e and e.endswith(f"{self.base}{path})"))]
        assert self.elsewhere == [], "requests to another origin"
        assert self.errors == [], "console errors"
        assert self.dialogs == [], "dialogs opened"


@pytest.fixture
def tab(browser: "Browser", dashboard: str) -> Iterator[Tab]:
    """A fresh tab on the session's dashboard."""
    with open_tab(browser, dashboard) as tab:
        yield tab


@contextmanager
def open_tab(browser: "Browser", base: str) -> Iterator[Tab]:
    """A page in a context of its own (no cookies shared), watched for errors, dialogs and requests elsewhere."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page, base)

    def route(r: "Route") -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            tab.elsewhere.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and tab.errors.append(f"{m.text} ({m.location.get('url')})"))
    page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))

    def dialog(d: "Dialog") -> None:
        tab.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    try:
        yield tab
    finally:
        context.close()
