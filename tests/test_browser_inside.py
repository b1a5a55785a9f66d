"""The job page's "Look inside" section in a real browser (Debian's Chromium through Playwright) against the API under
uvicorn and a real worker, with every request to another origin aborted: pick a test image, see its prediction,
Grad-CAM and activations, go from a feature map to its filter's strongest images and back, and drop your own."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from bench.processes import API_COMMAND, ROOT, STARTED, serving, start_worker, stop
from service.config import Settings
from tests.helpers import make_settings, sqlite_database
from tests.test_predict import png
from worker import synthetic

pytestmark = pytest.mark.slow

# Five steps of one epoch: it learns little, but has weights, mistakes to list and every picture to draw.
TINY = {
    "dataset": "synthetic",
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 160,
    "test_samples": 64,
    "device": "cpu",
    "epochs": 1,
}
SCREENSHOTS = ROOT / "var" / "screenshots"
# The first look starts the worker-side process and loads torch, on two shared cores: expectations wait this long.
TIMEOUT_MS = 90_000

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("browser-inside")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    """The API for the whole module: kept off the list of processes each test's cleanup kills, stopped here."""
    with serving(API_COMMAND, settings, Path(settings.artifact_dir).parent / "api.log") as (process, url):
        STARTED.remove(process)
        yield url


@pytest.fixture(scope="module")
def job(base: str, settings: Settings) -> int:
    """A job of TINY, trained by a worker of its own (`--burst`: it exits once the queue is empty)."""
    with httpx.Client(base_url=base, timeout=30) as api:
        job_id: int = api.post("/jobs", json=TINY).json()["id"]
        worker = start_worker(settings, Path(settings.artifact_dir).parent / "worker.log", "--burst")
        STARTED.remove(worker)
        try:
            assert worker.wait(timeout=600) == 0
        finally:
            stop(worker)
        assert api.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    return job_id


@dataclass
class Tab:
    """A page in a fresh browser context, and what went wrong in it."""

    page: "playwright_api.Page"
    base: str
    errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, name: str, selector: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.locator(selector).screenshot(path=SCREENSHOTS / f"{name}.png")

    def assert_clean(self) -> None:
        assert self.elsewhere == [], "requests to another origin"
        assert self.errors == [], "console errors"


@contextmanager
def open_tab(browser: "playwright_api.Browser", base: str) -> Iterator[Tab]:
    """A page in a context of its own, watched for errors and requests elsewhere."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page, base)

    def route(r: "playwright_api.Route") -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            tab.elsewhere.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and tab.errors.append(f"{m.text} ({m.location.get('url')})"))
    page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def tab(browser: "playwright_api.Browser", base: str) -> Iterator[Tab]:
    with open_tab(browser, base) as tab:
        yield tab


def test_a_test_image_is_looked_inside_and_a_feature_map_leads_to_its_filter(tab: Tab, job: int) -> None:
    page = tab.page
    tab.go(f"/ui/jobs/{job}")
    section = page.locator("#inside")
    # Picked by number, with the keyboard alone.
    number = section.get_by_label("Test image", exact=True)
    number.fill("7")
    number.press("Enter")
    explained = section.locator('img[alt^="where the network looked in test image 7"]')
    expect(explained).to_be_visible(timeout=TIMEOUT_MS)
    expect(explained).to_have_attribute("src", f"/jobs/{job}/explain.png?image=7", timeout=TIMEOUT_MS)
    expect(section.locator(".bars li")).to_have_count(5, timeout=TIMEOUT_MS)
    activations = section.locator('img[alt="activations of test image 7, layer by layer"]')
    expect(activations).to_be_visible(timeout=TIMEOUT_MS)
    assert activations.evaluate("img => img.complete && img.naturalWidth > 1000")
    # Every picture opens at full size: each is inside a link to itself.
    for img in (explained, activations):
        link = section.locator(f'a[href="{img.get_attribute("src")}"]')
        expect(link.first).to_have_attribute("target", "_blank", timeout=TIMEOUT_MS)
    # A button over each of the 5 × 16 feature maps; the keyboard reaches them and Enter opens the filter.
    tiles = section.locator("button.tile")
    expect(tiles).to_have_count(80, timeout=TIMEOUT_MS)
    tile = section.get_by_role("button", name=re.compile(r"^conv3 channel \d+:"))
    first = tile.first
    channel = int(re.search(r"channel (\d+)", first.get_attribute("aria-label") or "")[1])  # type: ignore[index]
    first.focus()
    page.keyboard.press("Enter")
    strongest = section.locator(f'img[alt="the test images that drive conv3 channel {channel} hardest"]')
    expect(strongest).to_be_visible(timeout=TIMEOUT_MS)
    expect(strongest).to_have_attribute("src", f"/jobs/{job}/filters/conv3/{channel}.png", timeout=TIMEOUT_MS)
    # From the filter back to one of its images.
    choices = section.locator("#inside-filter li button")
    expect(choices).to_have_count(9, timeout=TIMEOUT_MS)
    target = int(re.match(r"#(\d+)", choices.nth(1).inner_text())[1])  # type: ignore[index]
    choices.nth(1).click()
    expect(number).to_have_value(str(target), timeout=TIMEOUT_MS)
    expect(section.locator(f'img[alt^="where the network looked in test image {target}"]')).to_be_visible(
        timeout=TIMEOUT_MS
    )
    tab.screenshot("inside", "#inside")
    tab.assert_clean()


def test_grad_cam_for_another_class_and_a_random_image_of_a_class(tab: Tab, job: int) -> None:
    page = tab.page
    tab.go(f"/ui/jobs/{job}")
    section = page.locator("#inside")
    # The first mistake (or image 0) is shown on arrival.
    expect(section.locator(".bars li")).to_have_count(5, timeout=TIMEOUT_MS)
    second = section.locator(".bars li .name").nth(1).inner_text()
    section.get_by_label("Grad-CAM for").select_option(second)
    expect(section.locator(f'img[alt$=" for {second}"]')).to_be_visible(timeout=TIMEOUT_MS)
    section.get_by_label("of class").select_option(label="blue rings")
    section.get_by_role("button", name="Random test image").click()
    index = int(section.get_by_label("Test image", exact=True).input_value())
    labels = httpx.get(f"{tab.base}/jobs/{job}/test-images").json()["labels"]
    assert synthetic.CLASS_NAMES[labels[index]] == "blue rings"
    expect(section.get_by_role("status").first).to_contain_text(
        f"test image {index} (true class: blue rings)", timeout=TIMEOUT_MS
    )
    tab.assert_clean()


def test_your_own_picture_is_looked_inside(tab: Tab, job: int, tmp_path: Path) -> None:
    page = tab.page
    tab.go(f"/ui/jobs/{job}")
    section = page.locator("#inside")
    expect(section.locator(".bars li")).to_have_count(5, timeout=TIMEOUT_MS)
    picture = tmp_path / "mine.png"
    picture.write_bytes(png(synthetic.draw(1, np.random.default_rng(5))[0][0], scale=8))
    section.get_by_label(re.compile("Your own picture")).set_input_files(picture)
    explained = section.locator('img[alt^="where the network looked in your picture mine.png"]')
    expect(explained).to_be_visible(timeout=TIMEOUT_MS)
    expect(explained).to_have_attribute("src", re.compile(r"^blob:"), timeout=TIMEOUT_MS)
    expect(section.locator("button.tile")).to_have_count(80, timeout=TIMEOUT_MS)
    # A file that is no picture: the API's own message, and nothing else breaks.
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not a picture at all")
    section.get_by_label(re.compile("Your own picture")).set_input_files(bad)
    expect(section.get_by_role("status").first).to_contain_text("not a PNG or JPEG", timeout=TIMEOUT_MS)
    tab.errors = [e for e in tab.errors if " 415 " not in e]  # the refused upload, as the browser reports it
    tab.assert_clean()
