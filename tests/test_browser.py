"""The dashboard in a real browser, with no worker: the API's docs, a hostile job name, signing in, and the headers
that keep every other origin out (tests/browser.py: the shared browser, API and tabs)."""

import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from bench.processes import API_COMMAND, serving
from tests.browser import TINY, Tab, open_tab
from tests.helpers import make_settings, sqlite_database

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

XSS_NAME = '<script>alert("script")</script><img src=x onerror="alert(\'img\')">'

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra").expect


def test_swagger_ui_lists_the_operations_with_no_network(tab: Tab) -> None:
    tab.go("/docs")
    expect(tab.page.locator(".opblock").first).to_be_visible()
    summaries = tab.page.locator(".opblock-summary-path").all_inner_texts()
    assert "/jobs" in [s.replace("\u200b", "") for s in summaries]
    assert tab.page.locator(".opblock").count() >= 20
    tab.assert_clean()


def test_a_hostile_job_name_is_shown_as_text_and_the_buttons_cancel_and_rerun(
    tab: Tab, dashboard_api: httpx.Client
) -> None:
    api = dashboard_api
    job = api.post("/jobs", json={**TINY, "name": XSS_NAME}).json()  # no worker in this module: it stays queued
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


def test_signing_in_with_the_api_token(browser: "Browser", tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_database(tmp_path), api_token="open sesame")
    with serving(API_COMMAND, settings, tmp_path / "api.log") as (_, base):
        httpx.post(f"{base}/jobs", json=TINY, headers={"Authorization": "Bearer open sesame"})
        with open_tab(browser, base) as tab:
            page = tab.page
            tab.go("/ui/")
            dialog = page.get_by_role("dialog", name="Sign in")
            expect(dialog).to_be_visible()
            token = page.get_by_label("Token")
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


def test_every_dashboard_response_forbids_other_origins(dashboard_api: httpx.Client) -> None:
    api = dashboard_api
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
