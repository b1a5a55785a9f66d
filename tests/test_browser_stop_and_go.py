"""The dashboard's ways to stop and go on, in a real browser (tests/browser.py's shared browser, API and tabs): Cancel
says "cancelling…" at once, a stopped job resumes and a finished one continues from its checkpoint, a job that
failed before its first epoch says so, the form says how long a job will take, and a sweep's jobs are listed by
their labels. The jobs are put in each state directly (no worker runs here): training is tests/test_resume.py's."""

import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from service import artifacts, jobs, records
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job, Status, utcnow
from tests.browser import TINY, Tab
from tests.helpers import Sessions

pytestmark = pytest.mark.slow

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra").expect


@pytest.fixture
def sessions(dashboard_settings: Settings) -> Sessions:
    return make_sessionmaker(make_engine(dashboard_settings.database_url))


def running(sessions: Sessions, job_id: int) -> str:
    """Make the job running, as a worker's claim would (a long lease, no worker to renew it); its lease token."""
    token = uuid.uuid4().hex
    with transaction(sessions) as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=Status.RUNNING,
                lease_token=token,
                lease_expires_at=utcnow() + timedelta(hours=1),
                worker_id="browser-test",
                attempts=1,
                started_at=utcnow(),
                device="cpu",
            )
        )
    return token


def ended(settings: Settings, sessions: Sessions, job_id: int, status: Status, checkpoint: bool) -> None:
    """Run the job to `status`, with a checkpoint after its first epoch (a file of the store, as a worker keeps one)."""
    token = running(sessions, job_id)
    with transaction(sessions) as s:
        if checkpoint:
            name = artifacts.checkpoint_name(token, 1, 0)
            path = Path(settings.artifact_dir) / str(job_id) / "checkpoints" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 3_000_000)
            records.set_checkpoint(s, job_id, token, name)
        jobs.finish(s, job_id, token, status, "it broke" if status == Status.FAILED else None)


def test_cancel_shows_cancelling_at_once(tab: Tab, dashboard_api: httpx.Client, sessions: Sessions) -> None:
    job_id = dashboard_api.post("/jobs", json={**TINY, "name": "to cancel"}).json()["id"]
    running(sessions, job_id)
    tab.go(f"/ui/jobs/{job_id}")
    expect(tab.page.locator("#job-summary .badge")).to_have_text("running")
    tab.page.get_by_role("button", name="Cancel").click()
    # The worker stops at its next heartbeat; the page says so the moment the API has the request.
    expect(tab.page.locator("#job-summary .badge")).to_have_text("cancelling…")
    expect(tab.page.locator("#action-message")).to_have_text("Cancelling…: it stops within seconds.")
    expect(tab.page.get_by_role("button", name="Cancel")).to_be_disabled()
    tab.go("/ui/")
    expect(tab.page.locator(f'tr[data-job="{job_id}"]')).to_contain_text("cancelling…")
    tab.assert_clean()


def test_a_cancelled_job_resumes_and_a_succeeded_one_continues(
    tab: Tab, dashboard_api: httpx.Client, dashboard_settings: Settings, sessions: Sessions
) -> None:
    page = tab.page
    stopped = dashboard_api.post("/jobs", json={**TINY, "name": "to resume"}).json()["id"]
    ended(dashboard_settings, sessions, stopped, Status.CANCELLED, checkpoint=True)
    tab.go(f"/ui/jobs/{stopped}")
    expect(page.locator("#job-summary")).to_contain_text("after epoch 1 · 3.0 MB")
    expect(page.locator("#continue-box")).to_be_hidden()
    tab.screenshot("resume")
    page.get_by_role("button", name="Resume from its checkpoint").click()
    expect(page.locator("#job-summary .badge")).to_have_text("queued")  # the same page: the same job
    expect(page.get_by_role("button", name="Resume from its checkpoint")).to_be_hidden()
    assert dashboard_api.get(f"/jobs/{stopped}").json()["status"] == "queued"
    dashboard_api.post(f"/jobs/{stopped}/cancel")  # no worker here to take it

    done = dashboard_api.post("/jobs", json={**TINY, "name": "to continue"}).json()["id"]
    ended(dashboard_settings, sessions, done, Status.SUCCEEDED, checkpoint=True)
    tab.go(f"/ui/jobs/{done}")
    expect(page.get_by_role("button", name="Resume from its checkpoint")).to_be_hidden()
    page.get_by_label("more epochs").fill("3")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#job-summary .badge")).to_have_text("queued")
    expect(page.locator("#spec")).to_contain_text("5")  # 2 epochs, and 3 more
    assert dashboard_api.get(f"/jobs/{done}").json()["spec"]["epochs"] == 5
    dashboard_api.post(f"/jobs/{done}/cancel")
    # Look inside asks a succeeded job for its test images, which this one (trained by no worker) has none of.
    tab.assert_clean(refused=(404, f"/jobs/{done}/test-images"))


def test_a_job_that_failed_before_its_first_epoch_says_so_and_cannot_resume(
    tab: Tab, dashboard_api: httpx.Client, dashboard_settings: Settings, sessions: Sessions
) -> None:
    job_id = dashboard_api.post("/jobs", json={**TINY, "name": "to fail"}).json()["id"]
    ended(dashboard_settings, sessions, job_id, Status.FAILED, checkpoint=False)
    tab.go(f"/ui/jobs/{job_id}")
    expect(tab.page.locator("#latest-epoch")).to_have_text(
        "No epoch finished: the job failed before its first epoch ended."
    )
    resume = tab.page.get_by_role("button", name="Resume from its checkpoint")
    expect(resume).to_be_disabled()
    expect(resume).to_have_attribute("title", "It stopped before its first epoch ended: there is no checkpoint.")
    tab.assert_clean()


def test_the_form_says_how_long_and_a_sweeps_jobs_go_by_their_labels(tab: Tab, dashboard_api: httpx.Client) -> None:
    sweep = dashboard_api.post(
        "/sweeps", json={"name": "rates", "base": TINY, "grid": {"learning_rate": [1e-3, 1e-4]}}
    ).json()
    for job in sweep["jobs"]:
        dashboard_api.post(f"/jobs/{job['id']}/cancel")
    page = tab.page
    tab.go("/ui/")
    for job, label in zip(sweep["jobs"], ("rates · lr 1e-3", "rates · lr 1e-4"), strict=True):
        expect(page.locator(f'tr[data-job="{job["id"]}"] td.name')).to_contain_text(label)

    page.locator("#spec-epochs").fill("1")
    page.locator("#spec-name").fill("estimated")
    page.get_by_role("button", name="Queue job").click()
    message = page.get_by_role("status").filter(has_text="Queued job")
    # With a live worker that has trained, "It should train in about …"; with none (as here, unless another test's
    # worker is still up), the warning that it waits for one.
    expect(message).to_contain_text(re.compile(r"should train in about|no worker is running"))
    tab.screenshot("estimate")
    queued = dashboard_api.get("/jobs").json()["items"][0]
    dashboard_api.post(f"/jobs/{queued['id']}/cancel")
    tab.assert_clean()
