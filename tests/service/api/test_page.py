"""The demo page in a real browser (Debian's Chromium driven by Playwright) against a real
`movie-recs serve` on the seeded MovieLens store and the tiny trained model."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from bench.harness.servers import Server, server_env
from tests.support.service import SECRET

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("MOVIE_RECS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "page-test-key-0123456789"
# Set to docs/ to refresh the README's picture (page.png, the top of the page at 1280 px).
SCREENSHOT_DIR = os.environ.get("MOVIE_RECS_SCREENSHOT_DIR")


def start_server(tmp: Path, seeded_sqlite: Path, model_dir: Path, **extra: str) -> Iterator[Server]:
    db = tmp / "store.db"
    shutil.copy(seeded_sqlite, db)
    settings = {
        "MOVIE_RECS_PAGE": "true",
        "MOVIE_RECS_WEBHOOK_SECRETS": SECRET,
        "MOVIE_RECS_API_KEYS": "",
        **extra,
    }
    env = server_env(f"sqlite:///{db}", model_dir, **settings)
    with Server(env, tmp / "server.log") as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, seeded_sqlite, tiny_model_dir) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    yield from start_server(tmp_path_factory.mktemp("page"), seeded_sqlite, tiny_model_dir)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, seeded_sqlite, tiny_model_dir) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    yield from start_server(
        tmp_path_factory.mktemp("keyed"),
        seeded_sqlite,
        tiny_model_dir,
        MOVIE_RECS_API_KEYS=f"other:read:other-key-0123456789,page:read+events+users:{API_KEY}",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    console = Console(opened)
    yield opened, console
    context.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)


def titles(page: Page, selector: str) -> list[str]:
    return page.locator(f"{selector} .movie .title").all_inner_texts()


def choose_user(page: Page, user: str) -> None:
    page.get_by_label("User id").fill(user)
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.locator("#recs-title")).to_have_text(f"Recommended for user {user}")


def test_a_user_rates_a_movie_and_the_recommendations_move(
    server: Server, page: tuple[Page, Console], tmp_path: Path
) -> None:
    tab, console = page
    tab.goto(server.url)
    expect(tab.locator("#auth-status")).to_contain_text("auth is off")
    expect(tab.locator("#sample-users button").first).to_be_visible()
    choose_user(tab, "1")

    recs = tab.locator("#recs .movie")
    expect(recs).to_have_count(10)
    expect(tab.locator("#recs .because")).to_have_count(10)
    for reason in tab.locator("#recs .because").all_inner_texts():
        assert reason.startswith("because you watched "), reason
    expect(tab.locator("#recs-meta")).to_contain_text("personalized")
    expect(tab.locator("#history li")).to_have_count(20)
    before = titles(tab, "#recs")

    rated = before[0]
    tab.locator("#recs .movie").first.get_by_role("button", name="5 of 5").click()
    expect(tab.locator("#history li .title").first).to_have_text(rated)
    expect(tab.locator("#history li .rating").first).to_contain_text("5")
    expect(tab.locator("#recs .movie").first).not_to_have_text(rated)  # seen: excluded now
    after = titles(tab, "#recs")
    assert after != before and rated not in after
    expect(tab.locator("#recs .mark").first).to_be_visible()  # entered or moved, marked

    tab.get_by_role("searchbox", name="Movie title").fill("toy story")
    tab.get_by_role("button", name="Search", exact=True).click()
    first = tab.locator("#search-results .movie").first
    expect(first.locator(".title")).to_have_text("Toy Story")
    expect(first.locator(".year")).to_have_text("1995")

    first.get_by_role("button", name="Similar").click()
    expect(tab.locator("#detail-title")).to_have_text("Similar to Toy Story (1995)")
    expect(tab.locator("#similar .movie")).to_have_count(6)
    expect(tab.get_by_role("link", name="IMDb")).to_have_attribute(
        "href", "https://www.imdb.com/title/tt0114709/"
    )
    expect(tab.get_by_role("link", name="TMDB")).to_have_attribute(
        "href", "https://www.themoviedb.org/movie/862"
    )

    screenshot(tab, tmp_path, "page-1280.png")
    if SCREENSHOT_DIR:
        tab.evaluate("window.scrollTo(0, 0)")
        tab.set_viewport_size({"width": 1280, "height": 1000})
        tab.screenshot(path=str(Path(SCREENSHOT_DIR) / "page.png"))
    tab.set_viewport_size({"width": 375, "height": 800})
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 375px screen"
    screenshot(tab, tmp_path, "page-375.png")
    assert console.errors == []


def test_an_anonymous_session_is_personalized_after_two_clicks(
    server: Server, page: tuple[Page, Console]
) -> None:
    tab, console = page
    tab.goto(server.url)
    tab.get_by_label("an anonymous session").check()
    expect(tab.locator("#recs-meta")).to_contain_text("popular")
    expect(tab.locator("#recs .because").first).to_contain_text("popular")
    for query, title in (("matrix", "Matrix, The"), ("amelie", "Amelie")):
        tab.get_by_role("searchbox", name="Movie title").fill(query)
        result = tab.locator("#search-results .movie").filter(has_text=title).first
        expect(result).to_be_visible()
        result.get_by_role("button", name="Watched").click()
        expect(tab.locator("#history li .title").first).to_contain_text(title)
    expect(tab.locator("#history li")).to_have_count(2)
    expect(tab.locator("#recs-meta")).to_contain_text("personalized")
    expect(tab.locator("#recs-meta")).to_contain_text("2 history items used")
    reasons = tab.locator("#recs .because").all_inner_texts()
    assert reasons and all(r.startswith("because you watched ") for r in reasons)

    tab.get_by_text("Filters").click()
    tab.get_by_label("Comedy", exact=True).check()
    tab.get_by_label("From year").fill("2000")
    tab.get_by_label("From year").press("Tab")  # the change event refreshes the list
    expect(tab.locator("#filter-summary")).to_have_text("(1 genre(s), years)")
    expect(tab.locator("#recs")).to_have_attribute("aria-busy", "false")
    genres = tab.locator("#recs .genres-line").all_inner_texts()
    years = [int(y) for y in tab.locator("#recs .movie .year").all_inner_texts()]
    assert genres and all("Comedy" in g for g in genres), genres
    assert all(y >= 2000 for y in years), years
    assert console.errors == []


def test_not_for_me_and_the_variety_slider(server: Server, page: tuple[Page, Console]) -> None:
    """A dislike shows in the history and leaves the popular list pushed away from it (no
    reason of it); the variety slider sends `diversity` and the list changes."""
    tab, console = page
    tab.goto(server.url)
    tab.get_by_label("an anonymous session").check()
    expect(tab.locator("#recs .movie")).to_have_count(10)
    tab.get_by_role("searchbox", name="Movie title").fill("robocop 1987")
    result = tab.locator("#search-results .movie").filter(has_text="RoboCop").first
    expect(result).to_be_visible()
    result.get_by_role("button", name="Not for me").click()
    expect(tab.locator("#history li .disliked").first).to_have_text("not for me")
    expect(tab.locator("#recs-meta")).to_contain_text("popular")
    expect(tab.locator("#recs")).to_have_attribute("aria-busy", "false")
    assert "RoboCop" not in titles(tab, "#recs")
    reasons = tab.locator("#recs .because").all_inner_texts()
    assert reasons and all(r.startswith("popular with everyone") for r in reasons), reasons
    before = titles(tab, "#recs")

    with tab.expect_request(
        lambda r: r.url.endswith("/v1/recommendations") and r.method == "POST"
    ) as sent:
        tab.get_by_label("Variety").fill("0.8")
    body = sent.value.post_data_json
    assert body is not None and body["diversity"] == 0.8
    expect(tab.locator("#diversity-value")).to_have_text("0.8")
    expect(tab.locator("#recs")).to_have_attribute("aria-busy", "false")
    expect(tab.locator("#recs .movie")).to_have_count(10)
    assert titles(tab, "#recs") != before
    assert console.errors == []


def test_a_webhook_movie_arrives_on_the_open_page(
    server: Server, page: tuple[Page, Console], tmp_path: Path
) -> None:
    tab, console = page
    tab.goto(server.url)
    expect(tab.locator("#live-size")).to_contain_text("9,742")
    command = tab.locator("#webhook-command").inner_text()
    assert "send-webhook examples/new-movie.json" in command and server.url in command
    assert "whsec_MfKQ" not in tab.content()  # the browser never holds the secret
    tab.evaluate("window.__notReloaded = true")

    payload = tmp_path / "movie.json"
    movie = {"id": "990001", "title": "Zéphyrine Über Alles", "genres": ["Drama"], "year": 2026}
    payload.write_text(json.dumps({"type": "movie.upserted", "data": movie}), "utf-8")
    cli = Path(sys.executable).with_name("movie-recs")
    sent = subprocess.run(
        [str(cli), "send-webhook", str(payload), "--url", server.url, "--secret", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr

    arrival = tab.locator("#arrivals .arrival").filter(has_text="Zéphyrine Über Alles (2026)")
    # Generous: two busy cores, and the webhook's movie waits for the next refresher step.
    expect(arrival).to_contain_text("indexed", timeout=90_000)
    expect(tab.locator("#live-size")).to_contain_text("9,743")
    tab.get_by_role("searchbox", name="Movie title").fill("zephyrine uber")
    result = tab.locator("#search-results .movie").first
    expect(result.locator(".title")).to_have_text("Zéphyrine Über Alles")
    assert tab.evaluate("window.__notReloaded") is True
    assert console.errors == []


def test_with_api_keys_the_page_asks_for_one(
    keyed_server: Server, page: tuple[Page, Console]
) -> None:
    tab, console = page
    tab.goto(keyed_server.url)
    assert API_KEY not in tab.content()
    key = tab.get_by_label("API key")
    expect(key).to_be_focused()
    expect(tab.locator("#app")).to_be_hidden()
    key.fill("wrong")
    tab.get_by_role("button", name="Use this key").click()
    expect(tab.locator("#auth-error")).to_contain_text("refused")
    key.fill(API_KEY)
    key.press("Enter")  # the keyboard alone is enough
    expect(tab.locator("#auth-status")).to_have_text("signed in with an API key")
    choose_user(tab, "1")
    expect(tab.locator("#recs .movie")).to_have_count(10)
    assert tab.evaluate("sessionStorage.getItem('movie-recs:api-key')") == API_KEY
    # The browser logs each refused request (two before the right key), and the experiment
    # panel's one look at the admin route this key may not read (it stops asking); nothing else.
    refused = [e for e in console.errors if "401 (Unauthorized)" not in e]
    assert len(refused) <= 1 and all("403 (Forbidden)" in e for e in refused), console.errors
    expect(tab.locator("#experiment")).to_be_hidden()


def test_the_page_marks_a_model_change(
    tmp_path: Path,
    seeded_sqlite: Path,
    tiny_model_dir: Path,
    other_tiny_model_dir: Path,
    page: tuple[Page, Console],
) -> None:
    from embeddings.artifacts import resolve_model_dir
    from embeddings.registry import open_registry
    from service.store import open_store

    registry = open_registry(tmp_path / "registry")
    other = registry.publish(resolve_model_dir(other_tiny_model_dir))
    servers = start_server(
        tmp_path,
        seeded_sqlite,
        tiny_model_dir,
        MOVIE_RECS_REGISTRY_URL=str(tmp_path / "registry"),
        MOVIE_RECS_MODEL_POLL_SECONDS="0.2",
    )
    server = next(servers)
    try:
        tab, console = page
        tab.goto(server.url)
        own = tab.locator("#live-model").inner_text()
        expect(tab.locator("#live-model")).not_to_have_text("…")

        async def promote() -> None:
            store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
            await store.promote_model(other, "page test")
            await store.close()

        with ThreadPoolExecutor(1) as thread:  # the page's event loop owns this thread
            thread.submit(asyncio.run, promote()).result()
        # The replica builds the new version's index, then swaps; the page polls every second.
        expect(tab.locator("#live-model")).to_contain_text(f"{other} (was ", timeout=90_000)
        expect(tab.locator("#live-model.changed")).to_be_visible()
        assert own != other
        assert console.errors == []
    finally:
        next(servers, None)  # the generator stops its server


def test_the_experiment_panel_shows_the_report_and_events_carry_their_list(
    tmp_path: Path, seeded_sqlite: Path, tiny_model_dir: Path, page: tuple[Page, Console]
) -> None:
    tab, console = page
    for server in start_server(tmp_path, seeded_sqlite, tiny_model_dir):
        variants = [
            {"name": "model", "strategy": "personalized"},
            {"name": "pop", "strategy": "popular"},
        ]
        body = {"name": "page-ab", "variants": variants}
        created = httpx.post(f"{server.url}/v1/experiments", json=body)
        assert created.status_code == 201, created.text
        tab.goto(server.url)
        panel = tab.locator("#experiment")
        expect(panel).to_be_visible()
        expect(tab.locator("#experiment-title")).to_have_text("Experiment page-ab")
        expect(tab.locator("#experiment-rows tr")).to_have_count(2)
        expect(tab.locator("#experiment-note")).to_contain_text("no verdict until")

        choose_user(tab, "1")
        expect(tab.locator("#recs-meta")).to_contain_text("experiment page-ab: variant ")
        variant = tab.locator("#recs-meta").inner_text().rsplit("variant ", 1)[1].strip()
        time.sleep(0.3)  # the list is written to the store within 0.1 s
        tab.locator("#recs .movie").first.get_by_role("button", name="Watched").click()
        row = tab.locator(f'#experiment-rows tr[data-variant="{variant}"]')
        expect(row.locator("td").nth(1)).to_have_text("1", timeout=12_000)  # one user shown
        expect(row.locator("td").nth(2)).to_have_text("100.0 %", timeout=12_000)  # and watched
        report = httpx.get(f"{server.url}/v1/experiments/page-ab/report").json()
        attributed = {v["name"]: v["attributed"] for v in report["variants"]}
        assert attributed[variant] == 1
        explicit = (
            f'movie_recs_attributed_events_total{{experiment="page-ab",how="explicit",'
            f'variant="{variant}"}} 1.0'
        )
        assert explicit in httpx.get(f"{server.url}/metrics").text  # the page sent the list's id
    assert console.errors == []
