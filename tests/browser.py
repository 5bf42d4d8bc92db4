"""Open a page in headless Chromium with the network blocked, over the DevTools protocol: every
request the page makes, every console or security message, and what a script run in the page
measures of the rendered DOM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

INSTALL = "apt-get install -y --no-install-recommends chromium (.ci/run does this in CI)"
# Every name resolves to nothing and every connection goes to a closed local port, so no
# request can leave the machine even if the page asked for one.
BLOCKED = ("--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")


def chromium() -> str | None:
    """The Chromium executable on PATH, if there is one."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Visit:
    """What happened when a page was opened."""

    requests: list[str] = field(default_factory=list)  # URLs the page asked for
    blocked: dict[str, str] = field(default_factory=dict)  # of them, stopped by the browser: why
    messages: list[str] = field(default_factory=list)  # console, log and exception texts
    result: Any = None  # the value of the script run after the page loaded


def visit(page: Path, script: str, timeout_s: float = 60.0, width: int | None = None) -> Visit:
    """Open page (a file) in headless Chromium, network blocked, in a window width CSS pixels
    wide (a phone's 390, a desktop's 1280; None: the browser's default); after its load event
    run script (a JavaScript expression) in it and return its value with what the page did."""
    executable = chromium()
    if executable is None:
        raise RuntimeError(f"Chromium is not installed: {INSTALL}")
    # Chromium's helper processes may still write to the profile as they exit: a cleanup
    # race is not the page's fault (seen once in CI: "Directory not empty: 'Default'").
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                *BLOCKED,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the helpers are stopped with it
        )
        try:
            return _drive(_endpoint(Path(profile), timeout_s), page, script, timeout_s, width)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the browser and every helper process of its group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(10)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _endpoint(profile: Path, timeout_s: float) -> str:
    """The browser's DevTools websocket, from the port file Chromium writes when it listens."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_file.exists():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise RuntimeError(f"Chromium did not open its DevTools port within {timeout_s:.0f} s")


class _Session:
    """Commands to one page over the browser's websocket, events gathered as they come."""

    def __init__(self, socket: Any, deadline: float) -> None:
        self.socket, self.deadline, self.next_id = socket, deadline, 0
        self.session: str | None = None
        self.events: list[dict] = []

    def send(self, method: str, **params: object) -> dict:
        self.next_id += 1
        message: dict[str, object] = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = self._receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._receive())

    def _receive(self) -> dict:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        return json.loads(self.socket.recv(timeout=left))


def _drive(endpoint: str, page: Path, script: str, timeout_s: float, width: int | None) -> Visit:
    """Open the page in a new tab, record its requests and messages, run the script."""
    with connect(endpoint, max_size=2**26, open_timeout=timeout_s) as socket:
        cdp = _Session(socket, time.monotonic() + timeout_s)
        target = cdp.send("Target.createTarget", url="about:blank")["targetId"]
        cdp.session = cdp.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Log", "Runtime"):
            cdp.send(f"{domain}.enable")
        if width is not None:
            cdp.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=width < 600,
            )
        cdp.events.clear()  # what about:blank did is not the page's
        cdp.send("Page.navigate", url=page.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired")
        time.sleep(0.5)  # a request the load event did not wait for would show by now
        value = cdp.send("Runtime.evaluate", expression=script, returnByValue=True)
        cdp.send("Network.disable")  # nothing after this is the page's doing
        visit = Visit(result=value.get("result", {}).get("value"))
        urls = {}
        for event in cdp.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
                urls[params["requestId"]] = params["request"]["url"]
            elif method == "Network.loadingFailed" and params.get("blockedReason"):
                visit.blocked[urls.get(params["requestId"], "?")] = params["blockedReason"]
            elif method == "Log.entryAdded":
                visit.messages.append(f"{params['entry']['source']}: {params['entry']['text']}")
            elif method == "Runtime.consoleAPICalled":
                visit.messages.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                visit.messages.append(f"exception: {params['exceptionDetails'].get('text')}")
        if "exceptionDetails" in value:
            visit.messages.append(f"script: {value['exceptionDetails'].get('text')}")
        return visit
