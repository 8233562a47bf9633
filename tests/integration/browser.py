"""A minimal headless Chromium driver for the report tests: the DevTools protocol over
``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file descriptors 3 and 4),
so no WebDriver or websocket package is needed. Debian's ``chromium`` package is enough."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """Path of Debian's ``chromium`` (or ``chromium-browser``), None when absent."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser with one page; use as a context manager."""

    def __init__(self, executable: str, profile: Path, width: int = 1400, height: int = 1000):
        # the browser reads commands on its fd 3 and writes replies and events on its fd 4
        to_child, self._commands = os.pipe()
        self._responses, from_child = os.pipe()

        def wire_pipes():  # in the child, before exec (and before other fds are closed)
            commands, replies = os.dup(to_child), os.dup(from_child)  # 3 or 4 may be in use
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"],
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.session = None
        self.width, self.height = width, height

    def __enter__(self) -> Chromium:
        target = self.send("Target.createTarget", url="about:blank", session=False)["targetId"]
        self.session = self.send(
            "Target.attachToTarget", targetId=target, flatten=True, session=False
        )["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close", session=False, timeout=10)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)
        os.close(self._responses)

    # --- protocol -----------------------------------------------------------------------------

    def send(self, method: str, session: bool = True, timeout: float = 60, **params) -> dict:
        """Send one command and wait for its result (events in between are dropped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"{method}: no reply in {timeout} s")

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._responses, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # --- page ---------------------------------------------------------------------------------

    def evaluate(self, expression: str, timeout: float = 60):
        """Value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "document.readyState === 'complete'", wait=30.0):
        """Navigate and wait until ``ready`` (a JavaScript condition) holds."""
        self.send("Page.navigate", url=url)
        self.wait_for(ready, wait)

    def wait_for(self, condition: str, wait: float = 30.0) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({condition})"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"page never satisfied: {condition}")

    def screenshot(self, path: Path) -> Path:
        """PNG of the page as shown (the window's size)."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
