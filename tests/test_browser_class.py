"""Two people signed in to the dashboard at once in Chromium, each with their own token: each sees who they are,
who owns each job, and cancel, rerun and delete only on what they may change; a viewer gets no form to submit."""

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

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra").expect


def sign_in(tab: Tab, token: str) -> None:
    tab.go("/ui/")
    dialog = tab.page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    tab.page.get_by_label("Token").fill(token)
    tab.page.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_hidden()


def test_two_people_signed_in_each_change_only_their_own_jobs(browser: "Browser", tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_database(tmp_path), api_token="boot")
    with serving(API_COMMAND, settings, tmp_path / "api.log") as (_, base):
        admin = {"Authorization": "Bearer boot"}
        tokens = {
            name: httpx.post(f"{base}/users", json={"name": name}, headers=admin).json()["token"]
            for name in ("ann", "bob")
        }
        jobs = {
            name: httpx.post(f"{base}/jobs", json=TINY, headers={"Authorization": f"Bearer {token}"}).json()["id"]
            for name, token in tokens.items()
        }
        with open_tab(browser, base) as ann, open_tab(browser, base) as bob:
            sign_in(ann, tokens["ann"])
            sign_in(bob, tokens["bob"])
            expect(ann.page.locator("#account")).to_contain_text("Signed in as ann (member)")
            expect(bob.page.locator("#account")).to_contain_text("Signed in as bob (member)")
            rows = bob.page.locator("#jobs-table tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.locator("td.owner")).to_have_text(["bob", "ann"])
            bob.screenshot("class-jobs-bob")

            # Bob looks at Ann's job: he may read it, not change it.
            bob.go(f"/ui/jobs/{jobs['ann']}")
            expect(bob.page.locator("#job-summary")).to_contain_text("ann")
            for button in ("Cancel", "Run again", "Delete"):
                expect(bob.page.get_by_role("button", name=button, exact=True)).to_be_hidden()
            bob.screenshot("class-job-of-another")

            # Ann cancels her own; once it has finished she may delete it.
            ann.go(f"/ui/jobs/{jobs['ann']}")
            expect(ann.page.get_by_role("button", name="Delete", exact=True)).to_be_hidden()
            ann.page.get_by_role("button", name="Cancel", exact=True).click()
            expect(ann.page.locator("#action-message")).to_have_text("Cancelled.")
            expect(ann.page.get_by_role("button", name="Delete", exact=True)).to_be_visible()
            ann.screenshot("class-job-of-ones-own")

            # Bob's own job offers him Cancel.
            bob.go(f"/ui/jobs/{jobs['bob']}")
            expect(bob.page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
            ann.assert_clean()
            bob.assert_clean()
        viewer = httpx.post(f"{base}/users", json={"name": "val", "role": "viewer"}, headers=admin).json()["token"]
        with open_tab(browser, base) as val:
            sign_in(val, viewer)
            expect(val.page.locator("#account")).to_contain_text("Signed in as val (viewer)")
            expect(val.page.locator("#jobs-table tbody tr")).to_have_count(2)
            expect(val.page.get_by_role("heading", name="Queue a job")).to_be_hidden()
            val.go(f"/ui/jobs/{jobs['bob']}")
            expect(val.page.get_by_role("button", name="Cancel", exact=True)).to_be_hidden()
            val.assert_clean()
