#!/usr/bin/env python3
"""Drives the web console in headless Chromium (Debian's `chromium`, through Playwright's CDP
driver: Playwright's own browser download is never used) against a running Hookhub.

Run by `tests/tests/console.rs`, which starts the dev server, sets up a source and a
subscription with one delivered event, and passes them in the environment:

  HOOKHUB_URL, HOOKHUB_ADMIN_KEY, EVENT_ID, SUBSCRIPTION_ID, SOURCE_ID (a source accepting
  unsigned JSON), EVENT_COUNT (events received, all delivered, EVENT_ID the newest; more than
  one page of the events list)
  CHROMIUM            the browser binary (default: `chromium` on PATH)
  SCREENSHOT_DIR      when set, the events and event pages are saved there as PNG

Exits 0 when every check passed; otherwise prints what failed (with the browser's console and
request log) and exits 1.
"""

import json
import os
import shutil
import sys
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import expect, sync_playwright

TIMEOUT_MS = 20_000


def main() -> int:
    base = os.environ["HOOKHUB_URL"].rstrip("/")
    key = os.environ["HOOKHUB_ADMIN_KEY"]
    event_id = os.environ["EVENT_ID"]
    sub_id = os.environ["SUBSCRIPTION_ID"]
    source_id = os.environ["SOURCE_ID"]
    event_count = int(os.environ["EVENT_COUNT"])
    shots = os.environ.get("SCREENSHOT_DIR")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        print("chromium not found: run scripts/install-deps.sh", file=sys.stderr)
        return 1

    origin = urlsplit(base)[:2]
    requests: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []
    # Chromium logs each failed fetch as a console error: the statuses a step provokes on
    # purpose (a wrong key's 401, a conflict's 409) are allowed while it runs, nothing else.
    provoked: set[int] = set()

    with sync_playwright() as p:
        # --no-sandbox: the test may run as root (containers), where Chromium's sandbox refuses.
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: page_errors.append(str(e)))

        def on_console(msg):
            if msg.type != "error":
                return
            if any(f"status of {status} " in msg.text for status in provoked):
                return
            console_errors.append(msg.text)

        page.on("console", on_console)
        try:
            page.goto(base + "/console")
            key_field = page.locator("#key")
            expect(key_field).to_have_attribute("type", "password")

            # A wrong key: the API's error is shown, and nothing is kept.
            key_field.fill("not-the-key")
            provoked.add(401)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#flash")).to_contain_text("unauthorized")
            provoked.clear()
            assert page.evaluate("sessionStorage.getItem('hookhub.adminKey')") is None
            assert page.evaluate("localStorage.length") == 0

            key_field.fill(key)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#nav")).to_be_visible()

            # The events page: the delivered event, newest first, and the last hour's counts.
            row = page.locator(f'tr[data-event="{event_id}"]')
            expect(row.locator(".badge")).to_have_text("delivered")
            expect(page.locator("#stat-received")).to_have_text(f"{event_count} received")
            expect(page.locator("#stat-delivered")).to_have_text(f"{event_count} delivered")
            expect(page.locator("#stat-failing")).to_have_text("0 failing")
            if shots:
                page.screenshot(path=os.path.join(shots, "console-events.png"))
            page.select_option("#f-state", "failing")
            expect(page.locator("#events")).to_contain_text("No events.")
            page.select_option("#f-state", "")
            expect(row).to_be_visible()
            # Paging: the older page holds the rest, and back.
            rows = page.locator("#events tbody tr")
            expect(rows).to_have_count(25)
            page.click("text=Older →")
            expect(rows).to_have_count(event_count - 25)
            expect(row).to_have_count(0)
            page.click("text=← Newer")
            expect(row).to_be_visible()
            page.select_option("#f-source", source_id)
            expect(rows).to_have_count(25)

            # The event: body pretty-printed, one successful attempt; a replay adds a second.
            row.locator("a").click()
            expect(page.locator("#body")).to_contain_text('"type": "order.created"')
            attempts = page.locator("#attempts tr.attempt")
            expect(attempts).to_have_count(1)
            expect(attempts.first.locator(".badge")).to_have_text("succeeded")
            page.click(f'#replay button[data-subscription="{sub_id}"]')
            expect(page.locator("#flash")).to_contain_text("Replay queued to " + sub_id)
            expect(attempts).to_have_count(2)
            expect(attempts.nth(1).locator(".badge")).to_have_text("succeeded")
            if shots:
                page.screenshot(path=os.path.join(shots, "console-event.png"), full_page=True)

            # Subscriptions: state, disable/enable, reveal and rotate the secret, attempts.
            page.click('nav a[data-page="subscriptions"]')
            sub_row = page.locator(f'tr[data-subscription="{sub_id}"]')
            expect(sub_row.locator(".badge").first).to_have_text("enabled")
            sub_row.locator("button", has_text="Disable").click()
            expect(sub_row.locator(".badge").first).to_have_text("disabled")
            expect(sub_row).to_contain_text("manual")
            sub_row.locator("button", has_text="Enable").click()
            expect(sub_row.locator(".badge").first).to_have_text("enabled")
            sub_row.locator("button", has_text="Reveal secret").click()
            expect(page.locator("#secret-out")).to_contain_text("whsec_")
            first_secret = page.locator("#secret-out .secret").text_content()
            sub_row.locator("button", has_text="Rotate secret").click()
            expect(page.locator("#secret-out")).to_contain_text("New secret of")
            assert page.locator("#secret-out .secret").text_content() != first_secret
            sub_row.locator("a").click()
            # Every event's first attempt, and the replay.
            expect(page.locator("#sub-attempts tbody tr")).to_have_count(event_count + 1)

            # Sources: the ingest URL, and the create form shows the chosen scheme's fields.
            page.click('nav a[data-page="sources"]')
            expect(page.locator(f'tr[data-source="{source_id}"]')).to_contain_text(
                f"{base}/webhooks/{source_id}"
            )
            page.select_option("#new-scheme", "basic")
            expect(page.locator("#f-username")).to_be_visible()
            expect(page.locator("#f-password")).to_have_attribute("type", "password")
            page.select_option("#new-scheme", "token")
            expect(page.locator("#f-username")).to_have_count(0)
            page.fill("#new-id", "partner")
            page.fill("#f-header", "X-Token")
            page.fill("#f-value", "s3cret-token")
            page.click("#new-source button[type=submit]")
            expect(page.locator('tr[data-source="partner"]')).to_contain_text("token")
            # The same id again: the API's conflict is shown.
            page.select_option("#new-scheme", "none")
            page.fill("#new-id", "partner")
            provoked.add(409)
            page.click("#new-source button[type=submit]")
            expect(page.locator("#flash")).to_contain_text("conflict")
            provoked.clear()
            # Rotating a source's secret asks for the new one.
            page.once("dialog", lambda d: d.accept("n3w-token"))
            page.locator('tr[data-source="partner"] button', has_text="Rotate secret").click()
            expect(page.locator("#flash")).to_contain_text("Secret of partner replaced")

            # Auto-refresh: an event arriving while the list is open shows up by itself.
            page.click('nav a[data-page="events"]')
            expect(row).to_be_visible()
            new_id = post_event(base, source_id)
            expect(page.locator(f'tr[data-event="{new_id}"]')).to_be_visible()

            page.click("#logout")
            expect(page.locator("#key")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('hookhub.adminKey')") is None
        except Exception as e:  # noqa: BLE001 - report whatever failed, with the logs
            print(f"console check failed: {e}", file=sys.stderr)
            report(requests, console_errors, page_errors)
            return 1
        finally:
            browser.close()

    others = [u for u in requests if urlsplit(u)[:2] != origin]
    if others or console_errors or page_errors:
        print("the console talked to another host or logged errors", file=sys.stderr)
        report(requests, console_errors, page_errors)
        return 1
    print(f"console ok: {len(requests)} requests, all to {base}")
    return 0


def post_event(base: str, source_id: str) -> str:
    body = json.dumps({"type": "order.created", "n": "late"}).encode()
    request = urllib.request.Request(
        f"{base}/webhooks/{source_id}", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


def report(requests, console_errors, page_errors):
    for label, items in (
        ("requests", requests),
        ("console errors", console_errors),
        ("page errors", page_errors),
    ):
        print(f"{label}:", file=sys.stderr)
        for item in items:
            print(f"  {item}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
