"""/docs and /redoc work with no internet: every asset their pages load is served by the app itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from api.app import create_app
from iop.settings import Settings

BASE = "http://iop.test"
ABSOLUTE = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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
        "text/javascript", "application/javascript"}


async def test_the_oauth2_redirect_page_is_served(http):
    response = await http.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and not ABSOLUTE.findall(response.text)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine to render the page")
def test_swagger_ui_renders_headless(tmp_path):
    # A real server on a free port, a real browser with no network but the loopback: the operations appear.
    import socket
    import threading

    import uvicorn

    app = create_app(Settings())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1", f"--user-data-dir={tmp_path}",
             "--dump-dom", f"http://127.0.0.1:{port}/docs"],
            capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        server.should_exit = True
        thread.join(10)
    assert 'class="swagger-ui' in dom and "opblock" in dom and "/participants" in dom, dom[:2000]
