"""Load a page in headless Chromium (Debian's ``chromium``) over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: NUL-terminated JSON on file descriptors 3 and 4; no websocket
library, no port): console errors, uncaught exceptions, every requested URL, values of
JavaScript expressions once the page says it is ready, and a screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--remote-debugging-pipe",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)
    """Uncaught exceptions, console.error/assert calls, and error-level log entries (failed
    loads, blocked resources)."""
    urls: list[str] = field(default_factory=list)
    """Every URL the page requested."""
    values: dict[str, Any] = field(default_factory=dict)
    """The evaluated expressions, by expression."""
    screenshot: bytes = b""
    """PNG of the viewport, or of the whole page with ``full_page``."""


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send a command and wait for its answer (events that arrive meanwhile are kept)."""
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events[i]
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > self.deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(line)


def load(
    url: str,
    expressions: list[str],
    ready: str = "true",
    width: int = 1280,
    height: int = 2000,
    full_page: bool = False,
    timeout: float = 60.0,
) -> Page:
    """Open ``url``, wait for its load event and for the JavaScript ``ready`` to be true, then
    evaluate ``expressions`` and take a screenshot."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError(
            "expected Debian's chromium on PATH (make test's set-up installs it: "
            "apt-get install --no-install-recommends chromium), found none"
        )
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()

    def wire() -> None:  # in the child: its fd 3 reads commands, fd 4 writes answers
        a, b = os.dup(to_child), os.dup(from_child)  # above 4 unless 3 or 4 were free
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.set_inheritable(3, True)  # dup2 onto itself keeps the close-on-exec flag
        os.set_inheritable(4, True)

    with tempfile.TemporaryDirectory() as profile, open(Path(profile) / "stderr", "w+") as log:
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}/data", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            close_fds=False,
            preexec_fn=wire,
        )
        os.close(to_child)
        os.close(from_child)
        pipe = _Pipe(from_parent, to_parent, time.monotonic() + timeout)
        try:
            return _drive(pipe, url, expressions, ready, width, height, full_page)
        except (RuntimeError, TimeoutError, OSError) as e:
            log.seek(0)
            said = [line for line in log.read().splitlines() if "dbus" not in line][-20:]
            raise RuntimeError(f"{e}; chromium's stderr ends:\n" + "\n".join(said)) from e
        finally:
            with contextlib.suppress(RuntimeError, TimeoutError, OSError):
                pipe.send("Browser.close")
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(from_parent)
            os.close(to_parent)


def _drive(
    pipe: _Pipe,
    url: str,
    expressions: list[str],
    ready: str,
    width: int,
    height: int,
    full_page: bool,
) -> Page:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.send(f"{domain}.enable", session=s)
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    pipe.send("Emulation.setDeviceMetricsOverride", metrics, session=s)
    pipe.send("Page.navigate", {"url": url}, session=s)
    pipe.wait_for("Page.loadEventFired")

    def evaluate(expression: str) -> Any:
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = pipe.send("Runtime.evaluate", params, session=s)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    while not evaluate(ready):
        if time.monotonic() > pipe.deadline:
            raise TimeoutError(f"the page did not become ready ({ready}) in time")
        time.sleep(0.1)
    page = Page(values={e: evaluate(e) for e in expressions})
    shot: dict[str, Any] = {"format": "png"}
    if full_page:
        size = pipe.send("Page.getLayoutMetrics", session=s)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
        shot |= {"captureBeyondViewport": True, "clip": clip}
    page.screenshot = base64.b64decode(pipe.send("Page.captureScreenshot", shot, session=s)["data"])
    for event in pipe.events:
        page.errors += _error(event)
        if event.get("method") == "Network.requestWillBeSent":
            page.urls.append(event["params"]["request"]["url"])
    return page


def _error(event: dict[str, Any]) -> list[str]:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return [json.dumps(params["exceptionDetails"])[:500]]
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        return [json.dumps(params["args"])[:500]]
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        return [f"{params['entry'].get('url', '')}: {params['entry']['text']}"[:500]]
    return []


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; raises if ``data`` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"expected a PNG, found {data[:16]!r}")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
