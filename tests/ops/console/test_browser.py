"""The console in a real browser: Playwright driving Debian's headless Chromium against the app served over
HTTP, with the Jira sandbox and the real worker behind it. One browser for the module, a fresh context (no
cookies) per test. Without the browser the module is skipped, except with CI=true, where it fails.

Screenshots of each page go to a temporary folder; with NC_CONNECTOR_SCREENSHOTS=1 to docs/console/ (the
README's pictures: refresh them with `NC_CONNECTOR_SCREENSHOTS=1 pytest tests/ops/console/test_browser.py`)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select
from werkzeug.serving import make_server

from connector import db
from connector.models import Delivery
from connector.ops.app import create_app
from connector.ops.runtime import build_worker
from connector.receive.sightings import FLUSH_SECONDS
from connector.sandbox import start_in_thread
from connector.settings import Settings
from connector.sync.worker import Worker
from tests.conftest import IN_CI, load_fixture
from tests.helpers import signed
from tests.ops.console.support import TOKEN, console_settings
from tests.processes import drained, free_port
from tests.sandbox_client import Sandbox

CHROMIUM = Path(os.environ.get("NC_CONNECTOR_CHROMIUM", "/usr/bin/chromium"))
DOCS = Path(__file__).resolve().parents[3] / "docs" / "console"
XSS = "<script>alert(1)</script>"
pytestmark = pytest.mark.slow


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run; .ci/run installs Debian's chromium)",
                    pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        # As root (CI, these machines) Chromium runs only without its sandbox.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("NC_CONNECTOR_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


@contextmanager
def serving(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()


class Stack:
    """The app (console on), the sandbox as its Jira, and the database, for one module."""

    def __init__(self, base: str, engine: Engine, settings: Settings, sandbox: Sandbox) -> None:
        self.base, self.engine, self.settings, self.sandbox = base, engine, settings, sandbox

    def send(self, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        return requests.post(f"{self.base}/webhooks/qualio", data=body, headers=signed(body), timeout=10).status_code

    @contextmanager
    def worker(self, settings: Settings | None = None) -> Iterator[Worker]:
        """The real worker, as `nc-connector worker` builds and runs it (heartbeat too), in a thread until the
        block ends."""
        worker = build_worker(settings or self.settings)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run_forever, args=(stop,), name="console-test-worker", daemon=True)
        thread.start()
        try:
            yield worker
        finally:
            stop.set()
            thread.join(timeout=30)
            worker.engine.dispose()

    def deliveries(self, nc_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(Delivery.id, Delivery.status, Delivery.jira_key)
                                     .where(Delivery.nc_id == nc_id).order_by(Delivery.id)).all())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("console-browser")
    shutil.copy(sqlite_template, directory / "console.db")
    url = f"sqlite:///{directory / 'console.db'}"
    with start_in_thread() as jira:
        settings = console_settings(url, NC_CONNECTOR_JIRA_URL=jira.url, NC_CONNECTOR_JIRA_PAT="sandbox-pat",
                                    NC_CONNECTOR_WORKER_POLL_INTERVAL="0.1s", NC_CONNECTOR_JIRA_SEARCH_LAG="2s")
        engine = db.make_engine(url)
        with serving(create_app(settings, engine)) as base:
            yield Stack(base, engine, settings, Sandbox(jira.url))
        engine.dispose()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(base_url=stack.base, viewport={"width": 1280, "height": 640})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


def log_in(page: Any, token: str = TOKEN) -> None:
    page.goto("/console/login")
    page.fill("#token", token)
    page.click("form.login button")


def shoot(page: Any, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000  # a page, not a blank


def times_seen_within(page: Any, seconds: float) -> list[str]:
    """The page's times-seen once it shows all 8 sightings, reloading until `seconds` pass: the 7 copies are
    counted in memory and written by the app's flush thread within about FLUSH_SECONDS (receive/sightings.py),
    so a fast page can come before them."""
    deadline = time.monotonic() + seconds
    while (shown := page.locator(".times-seen").all_inner_texts()) != ["8"] and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        page.reload()
    return shown


def test_login_wrong_then_right_token_and_logout(page, stack, shots):
    page.goto("/console/dead-letters")
    assert page.url == f"{stack.base}/console/login?next=/console/dead-letters"
    page.fill("#token", "not-the-console-token")
    page.click("form.login button")
    assert page.locator("p.error").inner_text() == "That is not the console token."
    assert page.locator("#token").input_value() == ""  # what was typed is not sent back
    shoot(page, shots, "login")
    page.fill("#token", TOKEN)
    page.click("form.login button")
    assert page.url == f"{stack.base}/console/dead-letters"
    assert page.locator("h1").inner_text() == "Dead letters"
    page.click("form.logout button")
    assert page.url == f"{stack.base}/console/login"
    page.goto("/console/")
    assert page.url.startswith(f"{stack.base}/console/login")


def test_duplicate_storm_search_and_the_nc_page(page, stack, shots):
    payload = {**load_fixture("nc_created"), "ncId": "NC-2025-014", "title": "Label printer misprints lot numbers"}
    with stack.worker():
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: stack.send(payload), range(8)))
        assert sorted(answers) == [200] * 7 + [202]
        stack.send({**load_fixture("nc_created"), "ncId": "NC-2025-015", "title": "Another NC"})
        drained(stack.engine)
    ((_, status, key),) = stack.deliveries("NC-2025-014")
    issues = [i for i in stack.sandbox.issues() if "qualio-nc-NC-2025-014" in i["fields"]["labels"]]
    assert status == "done" and [i["key"] for i in issues] == [key]
    log_in(page)
    page.click("nav >> text=Deliveries")
    page.fill("input[name=nc]", "NC-2025-014")
    page.select_option("select[name=status]", "done")
    page.click("form.filters button")
    assert "nc=NC-2025-014" in page.url and "status=done" in page.url
    rows = page.locator("table.deliveries tbody tr")
    assert rows.count() == 1 and "NC-2025-014" in rows.first.inner_text()
    shoot(page, shots, "deliveries")
    rows.first.locator("a", has_text="NC-2025-014").click()
    assert page.url == f"{stack.base}/console/nc/NC-2025-014"
    assert times_seen_within(page, FLUSH_SECONDS * 5) == ["8"]
    assert page.locator("a.jira-key").inner_text() == key
    shoot(page, shots, "nc")


def test_dead_letter_replayed_from_the_page_then_synced(page, stack, shots, tmp_path):
    default = Path(__file__).resolve().parents[3] / "mappings" / "default.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(default.read_text().replace('issue_type = "Task"', 'issue_type = "Epic"'))
    with stack.worker(stack.settings.replace(mapping_file=str(bad))):
        assert stack.send({**load_fixture("nc_created"), "ncId": "NC-2025-020"}) == 202
        drained(stack.engine)
    ((_, status, _),) = stack.deliveries("NC-2025-020")
    assert status == "dead"
    log_in(page)
    page.goto("/console/dead-letters?nc=NC-2025-020")
    row = page.locator("table.deliveries tbody tr")
    assert row.count() == 1 and "issuetype" in row.inner_text() and "create" in row.inner_text()
    shoot(page, shots, "dead-letters")
    page.click("button[name=replay-matching]")
    assert page.locator("p.question").inner_text() == "Replay 1 dead letter?"
    shoot(page, shots, "replay-confirm")
    page.go_back()
    row.locator("button", has_text="Replay").click()
    assert "Re-queued 1 dead letter" in page.locator("p.notice").inner_text()
    assert stack.deliveries("NC-2025-020")[0].status == "queued"
    with stack.worker():
        drained(stack.engine)
    ((_, status, key),) = stack.deliveries("NC-2025-020")
    assert status == "done" and key
    page.goto("/console/nc/NC-2025-020")
    assert page.locator("a.jira-key").inner_text() == key


def test_xss_title_is_text_and_mapping_preview(page, stack, shots):
    assert stack.send({**load_fixture("nc_created"), "ncId": "NC-2025-666", "title": XSS}) == 202
    log_in(page)
    page.goto("/console/nc/NC-2025-666")
    assert XSS in page.locator("pre.payload").inner_text()
    page.goto("/console/mapping")
    page.fill("#payload", json.dumps({**load_fixture("same_second_comment_added"), "title": XSS}, indent=2))
    page.click("form.mapping button")
    assert f"[NC-2025-002] {XSS}" in page.locator("pre.fields").inner_text()
    assert "Root cause" in page.locator("pre.comment").inner_text()
    assert page.locator("p.target-status").inner_text().startswith("category")
    shoot(page, shots, "mapping")
    assert page.dialogs == []  # no script ran: alert() never opened a dialog
    assert page.evaluate("document.scripts.length") == 0


def attacker_page(target: str, delivery_id: int) -> Callable[..., Any]:
    """Another origin's page that posts a replay to the console as soon as it loads."""
    body = (f'<form method="post" action="{target}/console/replay"><input name="id" value="{delivery_id}">'
            f'<input name="csrf_token" value="guessed"></form><script>document.forms[0].submit()</script>')

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [body.encode()]
    return app


def test_a_forged_cross_site_post_is_refused(page, stack):
    assert stack.send({**load_fixture("nc_created"), "ncId": "NC-2025-030"}) == 202
    ((delivery_id, _, _),) = stack.deliveries("NC-2025-030")
    with stack.engine.begin() as conn:
        conn.execute(Delivery.__table__.update().where(Delivery.id == delivery_id)
                     .values(status="dead", failed_step="transition",
                             last_error="transition failed: Jira refused (400): Resolution is required."))
    log_in(page)  # the victim is logged in
    with serving(attacker_page(stack.base, delivery_id)) as evil, \
            page.expect_response(f"{stack.base}/console/replay") as answer:
        page.goto(evil)
    assert answer.value.status == 403
    page.wait_for_url(f"{stack.base}/console/replay")
    assert "cross-site request refused" in page.locator("p.error").inner_text()
    assert stack.deliveries("NC-2025-030")[0].status == "dead"


def test_overview_and_deliveries_after_the_story(page, stack, shots):
    with stack.worker() as worker:
        drained(stack.engine)  # the XSS NC of an earlier test syncs now
        with stack.engine.connect() as conn:
            counts = dict(conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        assert counts == {"done": 4, "dead": 1}  # the forged replay's target is still dead
        log_in(page)
        workers = page.locator("table.workers tbody tr")
        assert worker.worker_id in workers.all_inner_texts()[0]
        cards = dict(zip(page.locator(".card .label").all_inner_texts(),
                         page.locator(".card .figure").all_inner_texts(), strict=True))
        assert cards["dead letters"] == "1" and cards["done"] == "4" and cards["queued"] == "0"
        shoot(page, shots, "overview")
        page.click("a.card.done")
        assert page.url.endswith("/console/deliveries?status=done")
        assert page.locator("table.deliveries tbody tr").count() == 4
        page.goto("/console/deliveries")
        shoot(page, shots, "deliveries")


def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch):
    import tests.ops.console.test_browser as this

    monkeypatch.setattr(this, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        this.unavailable("no Chromium")
    monkeypatch.setattr(this, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        this.unavailable("no Chromium")
