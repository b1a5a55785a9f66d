"""The dashboard in a real browser while a real worker trains: a job followed live from the form that queued it,
and a trained sweep's pictures, comparison and leaderboard (tests/browser.py: the shared browser, API and tabs)."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from bench.processes import STARTED, start_worker, stop
from service.config import Settings
from tests.browser import TINY, TRAINING_S, Tab

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

# The dashboard's own colours for the first two lines (service/api/static/ui/js/charts.js's PALETTE).
FIRST_COLOURS = [(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B)]

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra").expect


@pytest.fixture(scope="module")
def worker(dashboard_settings: Settings) -> Iterator[None]:
    """One worker for the module, from the first test that needs one on; off the per-test cleanup list."""
    process = start_worker(dashboard_settings, Path(dashboard_settings.artifact_dir).parent / "worker.log")
    STARTED.remove(process)
    yield
    stop(process)


@pytest.fixture(scope="module")
def sweep(dashboard: str, worker: None) -> dict:
    """A sweep of two jobs that differ only in learning rate, trained: GET /sweeps/{id}'s answer."""
    grid = {"learning_rate": [1e-4, 1e-3]}
    with httpx.Client(base_url=dashboard, timeout=TRAINING_S + 10) as api:
        created = api.post("/sweeps", json={"name": "learning rates", "base": TINY, "grid": grid}).json()
        for job in created["jobs"]:
            done = api.get(f"/jobs/{job['id']}", params={"wait": TRAINING_S}).json()
            assert done["status"] == "succeeded", done
        answer: dict = api.get(f"/sweeps/{created['id']}").json()
        return answer


def _fill_spec(page: "Page", spec: dict[str, object]) -> None:
    for name, value in spec.items():
        control = page.locator(f"#spec-{name}")
        if control.evaluate("el => el.tagName") == "SELECT":
            control.select_option(str(value))
        else:
            control.fill(str(value))


def test_a_job_submitted_through_the_form_is_listed_and_its_page_follows_it_live(
    tab: Tab, dashboard_api: httpx.Client, request: pytest.FixtureRequest
) -> None:
    api, page = dashboard_api, tab.page
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

    # Many epochs: the test cancels the job after its first, and it must still be running then, however fast.
    page.locator("#spec-epochs").fill("20")
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
    # Whichever epoch is the newest by the time the page is looked at: epochs are a second or two apart.
    expect(page.locator("#latest-epoch")).to_contain_text(
        re.compile(r"Epoch [1-9]\d* of 20"), timeout=TRAINING_S * 1000
    )
    # The slider follows the newest epoch once its kernel numbers are published (a moment after the metrics).
    conv1 = page.locator('img[alt^="conv1 kernels"]')
    expect(conv1).to_have_attribute("src", re.compile(r"epoch=[1-9]\d*$"), timeout=TRAINING_S * 1000)
    expect(page.locator("#log")).to_contain_text(f"job {job_id}: epoch 1/20")
    # Enough: a running job stops within a step, and says so as it happens.
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-summary")).to_contain_text("cancelled", timeout=TRAINING_S * 1000)
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


def _pixels_of(page: "Page", selector: str, colours: list[tuple[int, int, int]]) -> list[int]:
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
