"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for tests that
assert on what a person sees: the rendered DOM after the page's scripts ran, clicks, and
screenshots. No extra package: the protocol's websocket goes through aiohttp (a Ray
dependency). A browser that cannot start raises, so a test that needs it fails."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp

# The flags this machine kind needs: no sandbox as root, and no background traffic
# (the network is closed; Chromium's own connections would be refused in bursts).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0"]


class Browser:
    def __init__(self, profile: Path, start_timeout_s: float = 30.0, window: tuple[int, int] = (1400, 1000)):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            raise RuntimeError("chromium is not installed (make install installs Debian's chromium)")
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([exe, *FLAGS, f"--window-size={window[0]},{window[1]}",
                                         f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout_s
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start (exit {self.process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.session = self.loop.run_until_complete(self._connect(page["webSocketDebuggerUrl"]))

    async def _connect(self, url: str):
        self.http = aiohttp.ClientSession()
        return await self.http.ws_connect(url, max_msg_size=0)

    async def _call(self, method: str, params: dict) -> dict:
        call_id = next(self.ids)
        await self.session.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.session.receive_json(timeout=60)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def call(self, method: str, **params) -> dict:
        return self.loop.run_until_complete(self._call(method, params))

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0):
        """Poll a JS expression until it is truthy; its value, or TimeoutError with the page's text."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = self.eval(expression)
            except RuntimeError:  # the page is between documents
                value = None
            if value:
                return value
            time.sleep(0.25)
        text = self.eval("document.body ? document.body.innerText : ''") or ""
        raise TimeoutError(f"{expression} never held; the page shows: {' '.join(text.split())[:1500]}")

    def run_names(self, link: str, runs: int) -> list[str]:
        """The run names an MLflow runs page lists (its links to run pages), in order, once
        there are `runs` of them."""
        self.goto(link)
        self.wait_for(f"document.querySelectorAll('a[href*=\"/runs/\"]').length === {runs}")
        return self.eval("[...document.querySelectorAll('a[href*=\"/runs/\"]')].map(a => a.innerText)")

    def column_ids(self) -> list[str]:
        """The column ids of an MLflow runs table's header (ag-grid's `col-id`), in the order
        shown (`aria-colindex`: ag-grid's DOM order is not the visual one)."""
        return self.eval("[...document.querySelectorAll('.ag-header-cell')]"
                         ".sort((a, b) => a.getAttribute('aria-colindex') - b.getAttribute('aria-colindex'))"
                         ".map(e => e.getAttribute('col-id'))")

    def scatter_axes(self, link: str, points: int) -> list[str]:
        """The axis titles of an MLflow chart page's scatter once it draws `points` points."""
        self.goto(link)
        self.wait_for(f"document.querySelectorAll('.scatterlayer .point').length === {points}")
        return self.eval("[...document.querySelectorAll('.xtitle, .ytitle')].map(e => e.textContent)")

    def text(self) -> str:
        return self.eval("document.body.innerText")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "session", None) is not None:
            self.loop.run_until_complete(self.session.close())
            self.loop.run_until_complete(self.http.close())
            self.loop.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
