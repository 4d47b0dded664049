"""One event loop per judge, in a thread of its own: what the synchronous `score` runs on.

`asyncio.run` per call made a fresh loop for every batch, and with it a fresh HTTP client
(an async client belongs to the loop it was opened on). A `JudgeLoop` starts on a judge's
first synchronous call and runs until the judge is closed, so its clients open once.
The caller's thread only waits for the result, so this works the same from scripts, from
threads, and inside Jupyter (whose main thread already runs a loop, where `asyncio.run`
refuses to start).

The client rule, for providers (`rlaif.judges.llm.anthropic`): an async client opened on a
judge's loop (`current()` is not None) lives until that loop closes, or until its provider
closes first; `at_close` registers the cleanup, which runs on that loop. A client opened on
a caller's own loop (`await judge.ascore(...)` from async code) lives for that batch only,
because rlaif cannot know when the caller's loop ends. A client is never used from a loop
other than the one it was opened on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_local = threading.local()  # .current: the JudgeLoop whose thread this is


def current() -> JudgeLoop | None:
    """The JudgeLoop running the calling coroutine, or None on a caller's own loop."""
    found: JudgeLoop | None = getattr(_local, "current", None)
    if found is None:
        return None
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return found if running is found.loop else None


class JudgeLoop:
    """An event loop running forever in a daemon thread; `run` hands it a coroutine and waits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()  # a forked child has the object but not the thread
        self._thread = threading.Thread(target=self._main, name=f"rlaif-judge-loop:{name}", daemon=True)
        self._thread.start()

    @property
    def usable(self) -> bool:
        """False once closed, and in a forked child (whose copy has no thread running it)."""
        return not self._closed and self._pid == os.getpid()

    def _main(self) -> None:
        _local.current = self
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._finish()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this loop and return its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                f"judge {self.name!r}: the synchronous score/compare was called from a coroutine "
                "running on the judge's own loop, where it would wait for itself; await "
                "judge.ascore(...) / judge.acompare(...) there instead"
            )
        if not self.usable:
            coro.close()
            raise RuntimeError(f"judge {self.name!r}: its event loop is closed (or belongs to the parent "
                               "process); the judge's score() starts a new one")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:  # e.g. KeyboardInterrupt while waiting: stop the work as well
            future.cancel()
            raise

    def at_close(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await `cleanup()` on this loop when it closes (e.g. closing a client opened on it)."""
        with self._lock:
            self._cleanups.append(cleanup)

    def close(self, wait: bool = True) -> None:
        """Cancel what still runs, await the cleanups, stop the thread. Safe to call twice.

        `wait=False` only asks the thread to finish: for a judge collected as garbage, which
        may happen on one of the loop's own worker threads, where waiting would deadlock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.loop.is_closed() or self._pid != os.getpid():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def _finish(self) -> None:
        """After the loop stopped, on its thread: cancel leftover tasks, run cleanups, close."""
        loop = self.loop
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            with self._lock:
                cleanups, self._cleanups = self._cleanups, []
            for cleanup in cleanups:
                try:
                    loop.run_until_complete(cleanup())
                except Exception as exc:  # one failed close must not keep the others open
                    log.warning("judge %s: a cleanup failed while closing its loop: %r", self.name, exc)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def finish_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> None:
    """Run the cleanup `coro` on `loop`, the loop what it closes belongs to: wait for it when
    that loop runs in another thread, schedule it when the loop is this thread's own, and drop
    it when the loop is gone or stopped (nothing can run there any more)."""
    try:
        mine = asyncio.get_running_loop() is loop
    except RuntimeError:
        mine = False
    if mine:
        loop.create_task(coro)
    elif loop.is_running() and not loop.is_closed():
        try:
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
        except Exception as exc:  # a cleanup that fails or hangs must not stop the others
            log.warning("a cleanup on another event loop did not finish: %r", exc)
    else:
        coro.close()
