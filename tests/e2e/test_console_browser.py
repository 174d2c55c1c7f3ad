"""The console in a real browser (issue 19): Debian's chromium, headless, driven by Playwright
against the local stack. Ingest a file → ready → search → answer → open a citation; a hostile
document renders as inert text; keyboard and labels (axe-core, bundled offline); a screenshot
of every page in CONSOLE_SCREENSHOTS (default build/console; docs/console holds a set).

Skips with the reason when Playwright or a chromium is missing: `make setup` installs chromium
from Debian packages where it can (root, apt-get). Playwright's own browser download is never
used (no such download is reachable here, and Debian's build is the one the project trusts).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragline.dev import devstack

from .conftest import call, wait_ready

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: `make setup` (the dev extra)"
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (
        p
        for p in (
            os.environ.get("CHROMIUM_PATH"),
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
            "/usr/bin/chromium",
        )
        if p and Path(p).is_file()
    ),
    None,
)
if CHROMIUM is None:
    pytest.skip(
        "no chromium: `make setup` installs Debian's chromium when run as root with apt-get "
        "(or set CHROMIUM_PATH); the console browser tests need it",
        allow_module_level=True,
    )

SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", REPO / "build" / "console"))
HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">Hostile title'
HOSTILE_TEXT = (
    "The quarantine ward keeps hostile samples.\n\n"
    '<script>window.__pwned = 2</script> <b onmouseover="window.__pwned=3">bold</b> '
    "quarantine samples are described here as plain text."
)
LIGHTHOUSE = (
    "# Lighthouse keeping\n\n"
    "The lighthouse keeper trims the lamp wick every evening and winds the clockwork that "
    "turns the lens. Fog signals sound when visibility drops below two nautical miles.\n\n"
    "## Supplies\n\n"
    "Paraffin oil for the lamp arrives by boat once a month; the keeper logs every delivery.\n"
)
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        # root in a container: chromium's sandbox needs user namespaces it may not have.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser: Any, stack: devstack.Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    pg.problems = problems
    yield pg
    context.close()
    assert not problems, problems


def console_url(stack: devstack.Stack) -> str:
    url = devstack.console_url(stack)
    assert url, "the local stack has no console function"
    return url


def sign_in(pg: Any, stack: devstack.Stack) -> None:
    pg.goto(console_url(stack))
    pg.get_by_label("API key", exact=True).fill(stack.api_key)
    pg.get_by_role("button", name="Use this key").click()
    pg.wait_for_selector("body[data-started]")


def open_page(pg: Any, hash_: str) -> None:
    pg.evaluate("h => { location.hash = h }", hash_)
    name = hash_[2:].split("/")[0].split("?")[0]
    pg.wait_for_selector(f"#view > [data-page='{name}'][data-ready]")


def shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def expect(locator: Any) -> Any:
    return sync_api.expect(locator)


def test_ingest_search_answer_and_open_a_citation(page: Any, stack: devstack.Stack) -> None:
    pg = page
    pg.goto(console_url(stack))
    expect(pg.get_by_label("API key", exact=True)).to_be_visible()
    shot(pg, "signin")
    sign_in(pg, stack)
    assert pg.evaluate("() => sessionStorage.getItem('ragline.apiKey')") == stack.api_key
    assert stack.api_key not in pg.url

    # documents: choose a file, watch it become ready
    open_page(pg, "#/documents")
    name = f"lighthouse-{uuid.uuid4().hex[:6]}.md"
    pg.get_by_label("Choose files to ingest", exact=True).set_input_files(
        {"name": name, "mimeType": "text/markdown", "buffer": LIGHTHOUSE.encode()}
    )
    expect(pg.locator("ul.uploads")).to_contain_text(f"{name}: accepted", timeout=TIMEOUT_MS)
    row = pg.locator("tr", has_text=name)
    expect(row).to_contain_text("ready", timeout=TIMEOUT_MS)
    row.get_by_role("button", name="Details").click()
    expect(pg.locator("#doc-detail")).to_contain_text("Timings")
    shot(pg, "documents")

    # search: one mode, then two side by side
    open_page(pg, "#/search")
    pg.get_by_label("Query", exact=True).fill("who trims the lamp wick in the lighthouse")
    pg.get_by_role("button", name="Search").click()
    hits = pg.locator("#search-results li.hit")
    expect(hits.first).to_contain_text(name, timeout=TIMEOUT_MS)
    expect(hits.first).to_contain_text("vector rank")
    pg.get_by_label("Compare", exact=True).check()
    pg.get_by_label("Second mode", exact=True).select_option("text")
    pg.get_by_role("button", name="Search").click()
    expect(pg.locator("#search-results .compare > section")).to_have_count(2)
    shot(pg, "search")

    # ask: an answer with citations; a citation opens its quoted passage
    open_page(pg, "#/ask")
    pg.get_by_label("Question", exact=True).fill("How often does paraffin oil for the lamp arrive?")
    pg.get_by_role("button", name="Ask").click()
    expect(pg.locator("p.answer")).to_be_visible(timeout=TIMEOUT_MS)
    pg.locator("p.answer button.cite, #answer-out ol button.cite").first.click()
    panel = pg.locator("#citation")
    expect(panel).to_be_visible()
    expect(panel.locator("blockquote")).not_to_be_empty()
    expect(panel).to_contain_text(name)
    shot(pg, "ask")

    # runs: the answer run, its tool log, a what-if branch and the compare view
    pg.locator("#answer-out a", has_text="run ").click()
    pg.wait_for_selector("#view > [data-page='runs'][data-ready]")
    expect(pg.get_by_role("heading", name="Tool log")).to_be_visible()
    shot(pg, "run")
    pg.get_by_label("Scenario label", exact=True).fill("vector, fewer sentences")
    pg.get_by_role("button", name="Run what-if").click()
    expect(pg.get_by_role("heading", name="Compare runs")).to_be_visible(timeout=TIMEOUT_MS)
    expect(pg.get_by_role("table", name="Parameter changes")).to_contain_text("mode")
    shot(pg, "compare")
    open_page(pg, "#/runs")
    expect(pg.get_by_role("table", name="Runs")).to_contain_text("answer")
    shot(pg, "runs")

    open_page(pg, "#/overview")
    expect(pg.locator("figure svg")).to_have_count(4)
    shot(pg, "overview")


def test_a_hostile_document_renders_as_inert_text(page: Any, stack: devstack.Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    status, body, _ = call(
        stack.functions["ingest"],
        method="POST",
        body={"title": HOSTILE_TITLE, "text": HOSTILE_TEXT},
        headers=auth,
    )
    assert status in (200, 202), body
    wait_ready(stack, stack.api_key, [body["document_id"]])
    pg = page
    sign_in(pg, stack)
    open_page(pg, "#/documents")
    row = pg.locator("tr", has_text="Hostile title")
    expect(row).to_contain_text(HOSTILE_TITLE)  # the markup shows literally
    open_page(pg, "#/search")
    pg.get_by_label("Query", exact=True).fill("quarantine ward hostile samples")
    pg.get_by_role("button", name="Search").click()
    hit = pg.locator("#search-results li.hit", has_text="Hostile title").first
    expect(hit).to_contain_text("<script>window.__pwned = 2</script>", timeout=TIMEOUT_MS)
    hit.hover()
    assert pg.evaluate("() => window.__pwned") is None
    assert pg.locator("#view img, #view script, #view b[onmouseover]").count() == 0
    shot(pg, "hostile")


def test_keyboard_navigation_and_accessibility(page: Any, stack: devstack.Stack) -> None:
    pg = page
    sign_in(pg, stack)
    open_page(pg, "#/overview")
    pg.locator("body").focus()
    pg.keyboard.press("Tab")
    assert pg.evaluate("() => document.activeElement.id") == "skip"
    pg.keyboard.press("Enter")
    assert pg.evaluate("() => document.activeElement.id") == "main"
    # Tab order from the top reaches the navigation; Enter on a link opens its page.
    pg.locator("#skip").focus()
    for _ in range(3):
        pg.keyboard.press("Tab")
    assert pg.evaluate("() => document.activeElement.textContent") == "Search"
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#view > [data-page='search'][data-ready]")
    expect(pg.locator("nav a[aria-current='page']")).to_have_text("Search")
    # Every control has a label.
    unlabeled = pg.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => !el.labels || el.labels.length === 0)
            .map(el => el.name || el.id)"""
    )
    assert unlabeled == []
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        pytest.skip("axe-playwright-python not installed: labels checked by hand only")
    for hash_ in ("#/overview", "#/documents", "#/search", "#/ask", "#/runs"):
        open_page(pg, hash_)
        results = Axe().run(pg)
        serious = [
            v["id"]
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert not serious, (hash_, results.generate_report())
