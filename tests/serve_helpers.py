"""What the `rlaif serve` tests share: a real server on 127.0.0.1 (port chosen by the OS) in a
thread, OpenRLHF's client call, /metrics reading, and a function judge that waits at a gate.
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GATE = threading.Event()  # gated_lengths waits here: a batch held in the judge on purpose


def gated_lengths(texts: list[str]) -> list[float]:
    """A function judge that waits for GATE (at most 60 s), then scores each text by its length."""
    GATE.wait(60)
    return [float(len(t)) for t in texts]


def write_spec(folder: Path, name: str, function: str, scale: tuple[float, float] = (0, 10), **extra: Any) -> Path:
    """A `type: function` judge spec file, `function` being 'module:callable'."""
    lines = ["type: function", f"function: {function}", "input: response", f"scale: [{scale[0]}, {scale[1]}]"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def serving(service: Any) -> Iterator[str]:
    """Run `service` (a JudgeService) on its own loop in a thread; yields the URL; drains on exit."""
    from rlaif.serve import start

    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["running"] = loop.run_until_complete(start(service))
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="serve-test", daemon=True)
    thread.start()
    started.wait(120)
    if "error" in box:
        raise box["error"]
    try:
        yield box["running"].url
    finally:
        GATE.set()  # never leave a gated judge blocking the drain
        asyncio.run_coroutine_threadsafe(box["running"].stop(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()


async def openrlhf_post(url: str, payload: dict[str, Any]) -> Any:
    """One POST the way OpenRLHF's SingleTurnAgentExecutor sends it: a fresh aiohttp session,
    `json=` body, no headers of its own, a 180 s total timeout, raise_for_status, then .json()."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        async with session.post(url, json=payload) as response:
            response.raise_for_status()
            return await response.json()


def metric(url: str, name: str, token: str | None = None) -> float:
    """The sum of every series of `name` in /metrics (0 when absent)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers=headers), timeout=30) as reply:
        text = reply.read().decode()
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, flags=re.MULTILINE)
    return sum(float(v) for v in values)
