"""Worker processes of the peer benchmark: start, step in alternation, stop (`_protocol`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _protocol import TAG

HERE = Path(__file__).resolve().parent
MMAP_THRESHOLD = 128 * 1024  # bytes: freed big blocks go back to the system (see ppo_step.py)


@dataclass
class Worker:
    """One side's training process and what it reported."""

    name: str
    proc: subprocess.Popen
    log: Path
    ready: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    def read(self) -> dict[str, Any]:
        """The next protocol record; the worker's log tail if it died."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        code = self.proc.wait()
        tail = self.log.read_text()[-4000:] if self.log.exists() else ""
        raise RuntimeError(f"worker {self.name} exited ({code}) without answering; log "
                           f"{self.log}:\n{tail}")

    def send(self, command: str) -> None:
        """Send `step` or `stop`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def step(self) -> dict[str, Any]:
        """Run one step and return its record."""
        self.send("step")
        record = self.read()
        self.steps.append(record)
        return record

    def stop(self) -> None:
        """Ask the worker to finish; keep its final record (peak RSS)."""
        try:
            self.send("stop")
            self.final = self.read()
        finally:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, python: str, script: str, args: list[str], logs: Path,
          extra_path: str | None = None, extra_env: dict[str, str] | None = None) -> Worker:
    """Start a worker and wait until it has loaded everything (its `ready` record);
    `extra_env` is added to its environment (side (e): the vLLM server's core settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra_env or {})
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    proc = subprocess.Popen([python, str(HERE / script), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
    worker = Worker(name, proc, log)
    worker.ready = worker.read()
    return worker


def interleave(workers: list[Worker], rounds: int, *, quiet: bool = False) -> None:
    """`rounds` steps per worker, alternating; the order rotates each round so no side always
    runs right after the same neighbour."""
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[:r % len(workers)]
        for w in order:
            rec = w.step()
            if not quiet:
                print(f"  round {r} {w.name:10s} step {rec['step']:6.2f}s  generate "
                      f"{rec['generate']:6.2f}s  reward {rec['reward']:5.2f}s  forwards + update "
                      f"{rec['update']:6.2f}s", flush=True)


def run_for_budget(workers: list[Worker], seconds: float) -> None:
    """Alternate steps until every worker has trained for `seconds` (its own step time)."""
    spent = {w.name: 0.0 for w in workers}
    while any(spent[w.name] < seconds for w in workers):
        for w in workers:
            if spent[w.name] < seconds:
                rec = w.step()
                spent[w.name] += rec["step"]
                print(f"  {w.name:10s} {spent[w.name] / 60:5.2f} min  reward "
                      f"{rec.get('reward_mean')}", flush=True)


def python_here() -> str:
    """This interpreter (the rlaif environment)."""
    return sys.executable
