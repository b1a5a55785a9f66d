"""The dashboard in a real browser (Debian's Chromium through Playwright) against the API under uvicorn and a real
worker, with every request to another origin aborted: what loads must come from the service itself."""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.processes import API_COMMAND, CHROMIUM, CHROMIUM_ARGS, ROOT, STARTED, serving, start_worker, stop
from service.config import Settings
from tests.helpers import make_settings, sqlite_database

pytestmark = pytest.mark.slow

# Five steps an epoch, so that an epoch takes seconds on a CPU (the 57 M parameters' update is most of a step);
# two epochs, so that the slider has epochs to move between and the compared lines have a slope.
TINY = {
    "dataset": "synthetic",
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 160,
    "test_samples": 64,
    "device": "cpu",
    "epochs": 2,
}
XSS_NAME = '<script>alert("script")</script><img src=x onerror="alert(\'img\')">'
SCREENSHOTS = ROOT / "var" / "screenshots"
# The dashboard's own colours for the first two lines (service/api/static/ui/js/charts.js's PALETTE).
FIRST_COLOURS = [(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B)]
TIMEOUT_MS = 60_000  # a job of TINY trains in seconds, but the two CPU cores are shared with other tests

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator["playwright_api.Browser"]:
    """One headless Chromium for the module; missing, the module is skipped, except under CI, where it fails."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but there is no browser at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _serve(settings: Settings, log: Path) -> Iterator[str]:
    """The API for the whole module: kept off the list of processes each test's cleanup kills, stopped here."""
    with serving(API_COMMAND, settings, log) as (process, base):
        STARTED.remove(process)
        yield base


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("browser")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    """The API for the whole module (its log beside the artifacts)."""
    yield from _serve(settings, Path(settings.artifact_dir).parent / "api.log")


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[None]:
    """One worker for the module, from the first test that needs one on; off the per-test cleanup list."""
    process = start_worker(settings, Path(settings.artifact_dir).parent / "worker.log")
    STARTED.remove(process)
    yield
    stop(process)


@pytest.fixture(scope="module")
def sweep(base: str, worker: None) -> dict:
    """A sweep of two jobs that differ only in learning rate, trained: GET /sweeps/{id}'s answer."""
    grid = {"learning_rate": [1e-4, 1e-3]}
    with httpx.Client(base_url=base, timeout=130) as api:
        created = api.post("/sweeps", json={"name": "learning rates", "base": TINY, "grid": grid}).json()
        for job in created["jobs"]:
            assert api.get(f"/jobs/{job['id']}", params={"wait": 120}).json()["status"] == "succeeded"
        answer: dict = api.get(f"/sweeps/{created['id']}").json()
        return answer


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
def tab(browser: "playwright_api.Browser", base: str) -> Iterator[Tab]:
    with open_tab(browser, base) as tab:
        yield tab


@contextmanager
def open_tab(browser: "playwright_api.Browser", base: str) -> Iterator[Tab]:
    """A page in a context of its own (no cookies shared), watched for errors, dialogs and requests elsewhere."""
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

    def dialog(d: "playwright_api.Dialog") -> None:
        tab.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    try:
        yield tab
    finally:
        context.close()


def _fill_spec(page: "playwright_api.Page", spec: dict[str, object]) -> None:
    for name, value in spec.items():
        control = page.locator(f"#spec-{name}")
        if control.evaluate("el => el.tagName") == "SELECT":
            control.select_option(str(value))
        else:
            control.fill(str(value))


def test_swagger_ui_lists_the_operations_with_no_network(tab: Tab) -> None:
    tab.go("/docs")
    expect(tab.page.locator(".opblock").first).to_be_visible()
    summaries = tab.page.locator(".opblock-summary-path").all_inner_texts()
    assert "/jobs" in [s.replace("\u200b", "") for s in summaries]
    assert tab.page.locator(".opblock").count() >= 20
    tab.assert_clean()


def test_a_hostile_job_name_is_shown_as_text_and_the_buttons_cancel_and_rerun(tab: Tab, api: httpx.Client) -> None:
    job = api.post("/jobs", json={**TINY, "name": XSS_NAME}).json()  # no worker yet: it stays queued
    page = tab.page
    tab.go("/ui/")
    expect(page.locator(f'tr[data-job="{job["id"]}"] td.name')).to_have_text(XSS_NAME)
    tab.go(f"/ui/jobs/{job['id']}")
    expect(page.locator("#job-title")).to_have_text(f"Job {job['id']} · {XSS_NAME}")
    assert page.locator("main img[src='x'], main script").count() == 0

    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-summary")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    page.get_by_role("button", name="Run again").click()
    expect(page).not_to_have_url(re.compile(rf"/ui/jobs/{job['id']}$"))
    rerun = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#job-title")).to_have_text(f"Job {rerun} · {XSS_NAME}")
    page.get_by_role("button", name="Cancel").click()  # before any worker could take it
    expect(page.locator("#job-summary")).to_contain_text("cancelled")
    assert api.get(f"/jobs/{rerun}").json()["spec"] == job["spec"]
    tab.assert_clean()


def test_a_job_submitted_through_the_form_is_listed_and_its_page_follows_it_live(
    tab: Tab, api: httpx.Client, request: pytest.FixtureRequest
) -> None:
    page = tab.page
    before = api.get("/jobs").json()["total"]
    tab.go("/")
    expect(page).to_have_url(re.compile(r"/ui/$"))
    expect(page.get_by_label("Epochs", exact=True)).to_have_value("3")  # the quick demo, where the form starts

    # The API's own message, next to the field it names.
    _fill_spec(page, {**TINY, "epochs": 0, "name": "from the form"})
    page.get_by_role("button", name="Queue job").click()
    expect(page.locator("#spec-epochs-error")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#spec-epochs")).to_have_attribute("aria-invalid", "true")
    assert api.get("/jobs").json()["total"] == before

    page.locator("#spec-epochs").fill("2")
    page.get_by_role("button", name="Queue job").click()
    expect(page.get_by_role("status").filter(has_text="Queued job")).to_be_visible()
    job_id = api.get("/jobs").json()["items"][0]["id"]
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_contain_text("from the form")
    expect(page.locator("#spec-epochs-error")).to_be_hidden()
    tab.screenshot("jobs")

    row.get_by_role("link", name="from the form").click()
    expect(page).to_have_url(re.compile(rf"/ui/jobs/{job_id}$"))
    expect(page.locator("#latest-epoch")).to_have_text("No epoch has finished yet.")
    page.evaluate("window.notReloaded = true")
    request.getfixturevalue("worker")  # only now: the page is open before the job has trained at all
    expect(page.locator("#latest-epoch")).to_contain_text("Epoch 1 of 2", timeout=TIMEOUT_MS)
    # The slider follows the newest epoch once its kernel numbers are published (a moment after the metrics).
    conv1 = page.locator('img[alt^="conv1 kernels"]')
    expect(conv1).to_have_attribute("src", re.compile(r"epoch=1$"), timeout=TIMEOUT_MS)
    expect(page.locator("#log")).to_contain_text(f"job {job_id}: epoch 1/2")
    # Enough: a running job stops within a step, and says so as it happens.
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-summary")).to_contain_text("cancelled", timeout=TIMEOUT_MS)
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"
    tab.assert_clean(refused=(422, "/jobs"))


def test_the_epoch_slider_changes_the_kernel_pictures(tab: Tab, sweep: dict) -> None:
    job = sweep["jobs"][0]
    page = tab.page
    tab.go(f"/ui/jobs/{job['id']}")
    conv1 = page.locator('img[alt^="conv1 kernels"]')
    expect(conv1).to_have_attribute("src", f"/jobs/{job['id']}/kernels/conv1/trained.png?epoch=2")

    slider = page.get_by_label("Epoch", exact=True)
    slider.focus()
    page.keyboard.press("ArrowLeft")  # the keyboard is enough
    expect(conv1).to_have_attribute("src", f"/jobs/{job['id']}/kernels/conv1/trained.png?epoch=1")
    expect(page.locator('img[alt^="confusion matrix"]')).to_have_attribute("src", re.compile(r"epoch=1$"))
    page.get_by_label("change since initial").check()
    expect(conv1).to_have_attribute("src", f"/jobs/{job['id']}/kernels/conv1/diff.png?epoch=1")
    slider.press("Home")
    expect(page.locator("#epoch-value")).to_contain_text("before training")
    for image in page.locator(".pictures img, #weight-change img").all():
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0, image.get_attribute("src")
    slider.press("End")
    page.get_by_label("trained", exact=True).check()
    tab.screenshot("job")
    tab.assert_clean()


def _pixels_of(page: "playwright_api.Page", selector: str, colours: list[tuple[int, int, int]]) -> list[int]:
    """How many pixels of the canvas under `selector` have each of `colours`."""
    return page.locator(selector).evaluate(
        """(canvas, colours) => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            return colours.map(([r, g, b]) => {
                let n = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255) n++;
                }
                return n;
            });
        }""",
        colours,
    )


def test_the_compare_page_draws_a_line_per_job_labelled_by_what_differs(tab: Tab, sweep: dict) -> None:
    ids = [job["id"] for job in sweep["jobs"]]
    page = tab.page
    tab.go(f"/ui/compare?ids={ids[0]},{ids[1]}")
    legend = page.locator("#comparison .u-legend .u-series th")
    expect(legend).to_have_count(3)  # the x axis, then one per job
    assert legend.all_inner_texts()[1:] == [f"lr 1e-4 (job {ids[0]})", f"lr 1e-3 (job {ids[1]})"]
    # Test loss rather than accuracy: on 64 test images, two jobs can share an accuracy and their lines overlap.
    page.get_by_label("Metric").select_option("test_loss")
    expect(page.locator("#comparison .u-title")).to_have_text("Test loss per epoch")
    blue, orange = _pixels_of(page, "#comparison canvas", FIRST_COLOURS)
    assert blue > 20 and orange > 20, (blue, orange)
    tab.screenshot("compare")
    tab.assert_clean()


def test_the_sweep_page_ranks_its_jobs_and_draws_them(tab: Tab, sweep: dict) -> None:
    page = tab.page
    tab.go(f"/ui/sweeps/{sweep['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Sweep {sweep['id']} · learning rates")
    ranked = page.locator("#leaderboard tbody tr")
    expect(ranked).to_have_count(2)
    best = sweep["leaderboard"][0]
    expect(ranked.first).to_contain_text(f"job {best['job_id']}")
    expect(ranked.first).to_contain_text(best["label"])
    expect(page.locator("#comparison .u-legend .u-series th")).to_have_count(3)
    tab.screenshot("sweep")
    tab.assert_clean()


def test_signing_in_with_the_api_token(browser: "playwright_api.Browser", tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_database(tmp_path), api_token="open sesame")
    with serving(API_COMMAND, settings, tmp_path / "api.log") as (_, base):
        httpx.post(f"{base}/jobs", json=TINY, headers={"Authorization": "Bearer open sesame"})
        with open_tab(browser, base) as tab:
            page = tab.page
            tab.go("/ui/")
            dialog = page.get_by_role("dialog", name="Sign in")
            expect(dialog).to_be_visible()
            token = page.get_by_label("API token")
            token.fill("wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(dialog.get_by_role("alert")).to_contain_text("not the right one")
            token.fill("open sesame")
            token.press("Enter")
            expect(dialog).to_be_hidden()
            expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
            tab.screenshot("signed-in")

            (cookie,) = page.context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert "open sesame" not in cookie["value"]
            assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
            assert "sesame" not in page.url
            page.get_by_role("button", name="Sign out").click()
            expect(dialog).to_be_visible()
            tab.assert_clean(refused=(401, "/session"))


def test_every_dashboard_response_forbids_other_origins(api: httpx.Client) -> None:
    assert api.get("/").headers["location"] == "/ui/"
    for path in ("/ui/", "/ui/jobs/1", "/ui/compare?ids=1,2", "/ui/sweeps/1", "/ui/static/js/api.js", "/ui/static/x"):
        headers = api.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "script-src 'self';" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
    # Nor are its files served anywhere else, without those headers.
    assert api.get("/static/ui/js/api.js").status_code == 404
    assert api.get("/static/docs/swagger-ui.css").status_code == 200
