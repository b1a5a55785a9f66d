"""What a newcomer meets in the browser (Debian's Chromium through Playwright, every request to another origin
refused): ReDoc with nothing from a CDN, a form that starts from the quick demo, and a job's pictures that can be
read, opened at full size and downloaded at the epoch the slider shows."""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.processes import API_COMMAND, ROOT, STARTED, serving, start_worker, stop
from service.config import Settings
from service.spec import DEMO
from tests.helpers import make_settings, sqlite_database

pytestmark = pytest.mark.slow

# The quick demo cut to two epochs of five steps: seconds on a CPU, and an epoch before the last for the slider.
TINY = {**DEMO, "train_samples": 160, "test_samples": 64, "epochs": 2}
SCREENSHOTS = ROOT / "var" / "screenshots"
# Pictures are drawn on request by a helper process: seconds on an idle machine, a minute or more where the two
# CPU cores are shared with other tests.
TIMEOUT_MS = 180_000
# A laptop's window: the pictures' grid has two columns here.
VIEWPORT: "playwright_api.ViewportSize" = {"width": 1440, "height": 1000}

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("newcomer")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    """The API for the whole module, kept off the list of processes each test's cleanup kills."""
    with serving(API_COMMAND, settings, Path(settings.artifact_dir).parent / "api.log") as (process, url):
        STARTED.remove(process)
        yield url


@pytest.fixture(scope="module")
def trained(settings: Settings, base: str) -> dict:
    """A job of TINY trained by a real worker: GET /jobs/{id}'s answer once it has succeeded."""
    worker = start_worker(settings, Path(settings.artifact_dir).parent / "worker.log")
    STARTED.remove(worker)
    try:
        with httpx.Client(base_url=base, timeout=630) as api:
            job = api.post("/jobs", json=TINY).json()
            # Seconds on an idle machine; minutes where the cores are shared with other tests.
            done: dict = api.get(f"/jobs/{job['id']}", params={"wait": 600}).json()
    finally:
        stop(worker)
    assert done["status"] == "succeeded", done
    return done


@pytest.fixture
def api(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


@dataclass
class Tab:
    """A page in a fresh browser context, and what went wrong in it."""

    page: "playwright_api.Page"
    base: str
    errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, name: str, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page)


@pytest.fixture
def tab(browser: "playwright_api.Browser", base: str) -> Iterator[Tab]:
    """A page in a context of its own, watched for script errors and for requests to another origin."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    tab = Tab(context.new_page(), base)

    def route(r: "playwright_api.Route") -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            tab.elsewhere.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    tab.page.on("console", lambda m: m.type == "error" and tab.errors.append(m.text))
    tab.page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    yield tab
    context.close()


# ---------------------------------------------------------------- offline docs


def test_redoc_renders_the_api_and_asks_no_other_origin_for_anything(tab: Tab) -> None:
    tab.go("/redoc")
    expect(tab.page.get_by_role("heading", name=re.compile(r"^alexnet-jobs"))).to_be_visible()
    expect(tab.page.get_by_text("POST /jobs", exact=False).first).to_be_attached()
    # The menu's Redocly logo is the one picture from elsewhere: refused by the page's policy, then left out.
    expect(tab.page.locator('img[alt="redocly logo"]')).to_have_count(0)
    assert tab.elsewhere == []
    assert [e for e in tab.errors if "Content Security Policy" not in e] == []


# ---------------------------------------------------------------- the form


def test_the_form_starts_from_the_quick_demo_and_offers_each_start_once(tab: Tab, api: httpx.Client) -> None:
    page = tab.page
    tab.go("/ui/")
    for name, value in DEMO.items():
        expect(page.locator(f"#spec-{name}")).to_have_value(str(value))
    start = page.get_by_label("Start from")
    options = start.locator("option").all_inner_texts()
    assert len(options) == len(set(options)) == 3, options
    expect(start.locator("option:checked")).to_have_text("quick synthetic demo")

    start.select_option(label="defaults")
    expect(page.locator("#spec-dataset")).to_have_value("cifar10")
    expect(page.locator("#spec-image_size")).to_have_value("224")
    page.locator("#spec-epochs").fill("7")
    page.get_by_role("button", name="Reset").click()  # back to the chosen start, not to something else
    expect(page.locator("#spec-epochs")).to_have_value("5")
    expect(start.locator("option:checked")).to_have_text("defaults")

    start.select_option(label="quick synthetic demo")
    page.get_by_role("button", name="Queue job").click()
    expect(page.get_by_role("status").filter(has_text="Queued job")).to_be_visible()
    job = api.get("/jobs").json()["items"][0]
    api.post(f"/jobs/{job['id']}/cancel")  # no worker needed: what was queued is the point
    assert {k: job["spec"][k] for k in DEMO} == DEMO
    assert tab.elsewhere == [] and tab.errors == []


# ---------------------------------------------------------------- a job's pictures


def _size(locator: "playwright_api.Locator") -> dict:
    """An image's own pixel width and the width it is shown at."""
    locator.scroll_into_view_if_needed()  # the pictures load lazily, as they come into view
    expect(locator).to_have_js_property("complete", True, timeout=TIMEOUT_MS)
    size: dict = locator.evaluate("img => ({natural: img.naturalWidth, shown: img.getBoundingClientRect().width})")
    assert size["natural"] > 0
    return size


def test_the_mistakes_get_a_row_at_their_own_size_and_every_picture_opens_at_full_size(tab: Tab, trained: dict) -> None:
    page = tab.page
    tab.go(f"/ui/jobs/{trained['id']}")
    mistakes = page.locator('img[alt^="misclassified test images"]')
    expect(mistakes).to_have_attribute("src", f"/jobs/{trained['id']}/mistakes.png?epoch=2", timeout=TIMEOUT_MS)

    # A row of its own, and its labels at the size they were drawn (9 pt), not halved into a column.
    grid = page.locator("#pictures").bounding_box()
    figure = page.locator("figure", has=mistakes).bounding_box()
    assert grid is not None and figure is not None
    assert figure["width"] > 0.98 * grid["width"]
    size = _size(mistakes)
    assert abs(size["shown"] - size["natural"]) <= 1, size

    # Every picture is a link to its PNG, so it can also be opened in a tab or saved.
    pictures = page.locator("#pictures img, #weight-change img")
    expect(pictures).to_have_count(5)
    links = pictures.evaluate_all("images => images.map(i => [i.src, i.closest('a.picture-link')?.href])")
    assert all(src == href for src, href in links), links

    # The keyboard opens one at full size, and Escape gives the focus back to the link.
    link = page.locator("a.picture-link", has=mistakes)
    link.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Mistakes (true → predicted), epoch 2")
    expect(dialog.get_by_role("link", name="Open the PNG")).to_have_attribute(
        "href", f"/jobs/{trained['id']}/mistakes.png?epoch=2"
    )
    assert _size(dialog.locator("img"))["shown"] == _size(dialog.locator("img"))["natural"]
    tab.screenshot("newcomer-lightbox", full_page=False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert link.evaluate("a => a === document.activeElement")

    # A click opens another; its Close button closes it.
    page.locator('img[alt^="conv1 kernels"]').click()
    expect(dialog).to_contain_text("conv1 kernels, trained, after epoch 2")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert page.url.endswith(f"/ui/jobs/{trained['id']}")  # the page stayed where it was
    tab.screenshot("newcomer-job")
    assert tab.elsewhere == [] and tab.errors == []


def test_downloads_offer_the_files_of_the_epoch_the_slider_shows(tab: Tab, trained: dict, api: httpx.Client) -> None:
    page = tab.page
    tab.go(f"/ui/jobs/{trained['id']}")
    files = page.get_by_role("region", name="Files of the epoch the slider shows")

    def offered() -> list[str]:
        return [a.get_attribute("href") or "" for a in files.get_by_role("link").all()]

    expect(files.get_by_role("heading")).to_have_text("After epoch 2, as the slider shows", timeout=TIMEOUT_MS)
    slider = page.get_by_label("Epoch", exact=True)
    slider.press("ArrowLeft")
    expect(files.get_by_role("heading")).to_have_text("After epoch 1, as the slider shows")
    at_one = offered()
    assert f"/jobs/{trained['id']}/mistakes.png?epoch=1" in at_one
    assert f"/jobs/{trained['id']}/kernels/conv2/diff.png?epoch=1" in at_one
    assert not [u for u in at_one if "epoch=2" in u]
    for url in at_one:  # each one is there to download
        response = api.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] in ("image/png", "application/json"), url
    assert files.get_by_role("link", name="mistakes-epoch1.png").get_attribute("download") == "mistakes-epoch1.png"

    slider.press("Home")
    expect(files.get_by_role("heading")).to_have_text("At initialisation (epoch 0), as the slider shows")
    assert not [u for u in offered() if "confusion" in u or "mistakes" in u]  # nothing was tested before training
    # The job's own files are still all there, as its latest epoch left them.
    expect(page.locator("#files").get_by_role("link", name="weights.pt")).to_be_visible()
    assert tab.elsewhere == [] and tab.errors == []
