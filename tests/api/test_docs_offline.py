"""/docs and /redoc work with no internet: every asset their pages load is served by the app itself."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from api.app import create_app
from iop.settings import Settings

BASE = "http://iop.test"
ABSOLUTE = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
# ReDoc's footer logo: the bundle always asks for it, and hides it when it does not load (nothing else breaks).
DECORATIVE = frozenset({"https://cdn.redoc.ly/redoc/logo-mini.svg"})
CHROMIUM = Path(os.environ.get("IOP_TEST_CHROMIUM", "/usr/bin/chromium"))  # as tests/ui


class References(HTMLParser):
    """Every URL the page makes the browser load: src, href, spec-url, and the url given to SwaggerUIBundle."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.script = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "spec-url"} and value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        self.script += data


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    urls = parser.urls + re.findall(r"""\b(?:url|oauth2RedirectUrl)\s*:\s*['"]([^'"]+)['"]""", parser.script)
    return urls


@pytest.fixture
async def http():
    # The docs need neither Temporal nor the records database: the app is not even started.
    app = create_app(Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.mark.parametrize("page, loader", [("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")])
async def test_the_page_loads_only_from_the_app(http, page, loader):
    response = await http.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not ABSOLUTE.findall(html), f"{page} names an outside host: {ABSOLUTE.findall(html)}"
    urls = references(html)
    assert "/openapi.json" in urls, urls
    scripts = [url for url in urls if url.split("?")[0].endswith(".js")]
    assert scripts, f"{page} loads no script of its own"
    for url in urls:
        target = urljoin(BASE + page, url)
        assert urlsplit(target).netloc == urlsplit(BASE).netloc, url
        served = await http.get(target)
        assert served.status_code == 200, (url, served.status_code)
        assert len(served.content) > 0, url
    # The script is the real bundle (not an empty placeholder): it defines what the page calls.
    bundle = (await http.get(urljoin(BASE + page, scripts[0]))).text
    assert len(bundle) > 100_000 and loader in bundle
    assert (await http.get(urljoin(BASE + page, scripts[0]))).headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }


async def test_the_oauth2_redirect_page_is_served(http):
    response = await http.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and not ABSOLUTE.findall(response.text)


def _browser_unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture
def chromium() -> str:
    reason = _browser_unavailable()
    if reason and os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but the docs cannot be rendered: {reason}")
    if reason:
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture
async def served():
    """The app on a free loopback port (not started: the docs need neither Temporal nor the database)."""
    import asyncio
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings()), host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)  # polls for the listening socket, not a synchronisation by time
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.parametrize(
    "page_path, rendered",
    [
        ("/docs", ".swagger-ui .opblock-tag-section"),  # Swagger UI drew the operations grouped by tag
        ("/redoc", "[role=menuitem], .menu-content li"),  # ReDoc drew its side menu
    ],
)
async def test_the_page_renders_in_a_browser_with_no_internet(chromium, served, page_path, rendered):
    from playwright.async_api import async_playwright

    outside: list[str] = []

    async def only_the_app(route) -> None:
        if route.request.url.startswith(served + "/") or route.request.url.startswith(("data:", "blob:")):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            await page.route("**/*", only_the_app)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(served + page_path)
            await page.wait_for_selector(rendered, timeout=30_000)
            text = await page.inner_text("body")
        finally:
            await browser.close()
    assert set(outside) <= DECORATIVE, f"{page_path} reached outside the app: {outside}"
    assert errors == []
    assert "participants" in text and "screenings" in text, text[:500]
