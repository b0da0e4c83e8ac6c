"""The dashboard in real headless Chromium, on the accounts system.

One account's address bounces (its AccountOpened is dead-lettered by notifications, and its
name holds a <script>), one account is banned (a reminder is pending for an hour). The test
opens each page, checks what a user sees, saves a screenshot of each in tests/artifacts/,
and replays the dead letter from the page once the cause is fixed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.support import start_dashboard, wait_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMEDRIVER = "/usr/bin/chromedriver"
EVIL_NAME = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which("chromium") is None or not Path(CHROMEDRIVER).exists():
        pytest.skip("needs chromium and chromium-driver (scripts/test installs them with apt-get)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Any]:
    from examples.accounts.system import Settings, build_system

    settings = Settings(
        settlement=timedelta(seconds=0.5),
        reminder_delay=timedelta(hours=1),
        follow_up_delay=timedelta(hours=1),
    )
    system = build_system(f"embedded://{tmp_path / 'data'}", settings)
    system.app.status_interval = 0.5
    try:
        yield system
    finally:
        system.close()


def _text(driver: Any, css: str) -> str:
    return str(
        driver.execute_script(
            f"const e = document.querySelector({css!r}); return e ? e.textContent : '';"
        )
    )


def _shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"dashboard-{name}.png"))


def test_pages_in_chromium(browser: Any, accounts: Any) -> None:
    from examples.accounts.notifications import EmailGateway

    service = accounts.service
    bounced = service.open(EVIL_NAME, "mallory@bounce.invalid")
    fine = service.open("Alice", "alice@example.com")
    service.ban(fine.account.id, "fraud")
    with accounts.app.running():
        wait_for(lambda: fine.account.id in accounts.payments.frozen, 30, "the ban settled")
        with start_dashboard(accounts.app, allow_actions=True) as dash:
            d = browser
            d.get(dash.url + "#/")
            for group in ("payments", "notifications", "analytics", "onboarding"):
                cell = f'tr[data-group="{group}"] td.workers'
                wait_for(lambda c=cell: _text(d, c) not in ("", "none"), 30, f"{group}'s worker")
            lags = d.execute_script(
                "return [...document.querySelectorAll('#groups td.lag')].map(e => e.textContent)"
            )
            assert lags and all(text.replace(",", "").isdigit() for text in lags)
            _shot(d, "overview")

            d.get(dash.url + "#/group/notifications")
            wait_for(lambda: "account-events" in _text(d, "#partitions"), 20, "partitions")
            assert _text(d, "#group-name") == "notifications"
            wait_for(lambda: _text(d, "#group-workers"), 20, "the group's worker")
            _shot(d, "group")

            d.get(dash.url + "#/topics")
            wait_for(
                lambda: _text(d, 'tr[data-topic="account-reminders"] td.delayed') == "1",
                20,
                "the pending reminder",
            )
            assert "UTC" in _text(d, 'tr[data-topic="account-reminders"] td.next-due')
            _shot(d, "topics")

            d.get(dash.url + "#/dead-letters")
            wait_for(lambda: "handler_error" in _text(d, "#dead-letters"), 20, "the dead letter")
            assert "bounced" in _text(d, "#dead-letters td.error")
            d.find_element("css selector", "#dead-letters tbody tr").click()
            wait_for(lambda: "<script>" in _text(d, "#letter-value"), 20, "the event's value")
            assert d.execute_script("return window.__pwned") is None  # shown, not run
            _shot(d, "dead-letter")
            d.execute_script("document.getElementById('letter').close()")

            # Fix the cause (mail goes through now), then replay from the page.
            class Fixed(EmailGateway):
                async def send(self, to: str, subject: str, account_id: str) -> None:
                    self.outbox.append(("sent", to, subject, account_id))  # type: ignore[arg-type]

            accounts.notifications.gateway = Fixed()
            d.get(dash.url + "#/group/notifications")
            wait_for(lambda: d.find_elements("css selector", "#replay"), 20, "the replay button")
            d.find_element("css selector", "#replay").click()
            wait_for(lambda: "Replayed 1" in _text(d, "#flash"), 30, "the replay")
            wait_for(
                lambda: accounts.notifications.has_handled(bounced.event_id, "", ""),
                30,
                "notifications to handle the replayed event",
            )
            _shot(d, "replayed")
            assert d.execute_script("return window.__pwned") is None

            d.find_element("css selector", "#pause").click()
            wait_for(lambda: _text(d, "#paused"), 30, "the group to report itself paused")
            assert _text(d, "h1 .badge") == "stopped"
            _shot(d, "paused")
            d.find_element("css selector", "#resume").click()
            wait_for(lambda: d.find_elements("css selector", "#pause"), 30, "the group resumed")
