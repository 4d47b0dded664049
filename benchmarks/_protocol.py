"""The line protocol between `peers.py` and its worker processes (standard library only: the
TRL 1.12 worker runs in an environment without rlaif).

A worker prints `@@PEERS {json}` lines on stdout (anything else there is a library's chatter)
and reads one command per line on stdin: `step` runs one training step and answers with its
record, `stop` answers with the worker's summary and exits. Workers whose trainer owns the
loop (TRL's `train()`) wait for the next command inside a step-end callback.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

TAG = "@@PEERS "
PAGE = os.sysconf("SC_PAGE_SIZE")


def emit(record: dict[str, Any]) -> None:
    """Send one record to the parent."""
    sys.stdout.write(TAG + json.dumps(record) + "\n")
    sys.stdout.flush()


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb() -> float | None:
    """Peak CUDA memory allocated by torch in MB, when on a GPU."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def sync() -> None:
    """Wait for queued GPU work, so wall-clock timers mean what they say."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def next_command() -> str:
    """Block until the parent sends a command ("step" or "stop")."""
    line = sys.stdin.readline()
    return line.strip() or "stop"


class StepClock:
    """Per-step timers: the step's wall clock and named parts (generate, reward)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.parts: dict[str, float] = {}

    def restart(self) -> None:
        """A new step begins."""
        self.start = time.perf_counter()
        self.parts = {}

    def add(self, name: str, seconds: float) -> None:
        """Count `seconds` toward part `name` of this step."""
        self.parts[name] = self.parts.get(name, 0.0) + seconds

    def timed(self, name: str, fn: Any) -> Any:
        """`fn` wrapped so that its calls count toward part `name`."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync()
                self.add(name, time.perf_counter() - t0)
        return wrapper

    def record(self, samples: int, tokens: int, **extra: Any) -> dict[str, Any]:
        """The finished step as a record: seconds, split, samples, generated tokens, memory."""
        sync()
        seconds = time.perf_counter() - self.start
        generate, reward = self.parts.get("generate", 0.0), self.parts.get("reward", 0.0)
        return {"step": seconds, "generate": generate, "reward": reward,
                "update": seconds - generate - reward, "samples": samples, "tokens": tokens,
                "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), **extra}


def setup_threads(threads: int) -> None:
    """The same torch thread count on every side."""
    import torch

    torch.set_num_threads(threads)


def worker_parser(description: str, reward_required: bool = False) -> argparse.ArgumentParser:
    """The options every side's worker takes (`peers.py` passes each the same values); a
    worker adds its own before parsing."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--policy", required=True)
    p.add_argument("--reward", required=reward_required, help="the seeded reward model folder")
    p.add_argument("--prompts", required=True, help="JSON list of prompts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mini-batch", type=int, default=8)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--lr", type=float, default=3e-4)
    return p
