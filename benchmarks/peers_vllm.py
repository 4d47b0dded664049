"""Side (e) of the peer benchmark: rlaif PPO with rollouts from vLLM, on as many cores as the others.

Side (c)'s settings (prompts, tokens, temperature, batch, reward, LoRA) with
`generation.backend: vllm` (`generation.vllm.sync` left at auto = weights: the LoRA-merged
changed tensors loaded in place every step); `--vllm-async` adds side (e'), the same with
`ppo.async_rollout: true` (the engine samples the next batch while the trainer updates) and
`ppo.tis_cap: 2.0`.

Cores. Every other side runs `--threads` torch threads. On a CPU the vLLM server computes on
cores of its own, so side (e) splits the same count: the server's worker gets
`--vllm-threads` OpenMP threads (default half of `--threads`), bound to the last cores of
this process's affinity mask (`VLLM_CPU_OMP_THREADS_BIND`, with
`VLLM_CPU_NUM_OF_RESERVED_CPU=0` so vLLM keeps no core back for its frontend), and the trainer
the rest as torch threads. The server's frontend and engine-core processes (Python, mostly
waiting) are not counted. The server inherits its environment from the worker process that
starts it (`rlaif.engines.vllm_server.ServerSpec.environment`), so the settings travel in that
worker's environment. On a GPU no split is made (the engine is vllm in the worker's process
when it imports there, `generation.vllm.engine: auto`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

SIDES = {"rlaif-vllm": "(e) rlaif + vLLM", "rlaif-vllm-async": "(e') vLLM async"}
TIS_CAP = 2.0


def split_cores(args: argparse.Namespace) -> tuple[int, int]:
    """(trainer torch threads, server OpenMP threads) adding up to `--threads` on a CPU."""
    if args.device != "cpu":
        return args.threads, 0
    server = args.vllm_threads or max(1, args.threads // 2)
    return args.threads - server, server


def unavailable(args: argparse.Namespace) -> str | None:
    """Why side (e) cannot run with these settings (None: it can)."""
    if args.device != "cpu" and importlib.util.find_spec("vllm") is not None:
        return None  # vllm in this environment: the in-process engine
    from rlaif.engines.vllm_setup import vllm_unavailable_reason

    if (reason := vllm_unavailable_reason()) is not None:
        return reason
    trainer, server = split_cores(args)
    cores = sorted(os.sched_getaffinity(0))
    if trainer < 1:
        return (f"--threads {args.threads} leaves no core for the trainer once the vLLM server has "
                f"{server}: run with --threads 2 or more (every side gets that many; side (e) "
                "splits them between its trainer and its server)")
    if server > len(cores):
        return f"--vllm-threads {server} exceeds the {len(cores)} cores this process may use"
    return None


def server_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment the (e) worker passes on to the vLLM server it starts."""
    _, server = split_cores(args)
    if not server:
        return {}
    cores = sorted(os.sched_getaffinity(0))[-server:]
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(str(c) for c in cores),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def worker_args(side: str, args: argparse.Namespace) -> list[str]:
    """`peers_rlaif.py` arguments that make side (c) into side (e) (after the common ones: a
    repeated `--threads` wins)."""
    trainer, _ = split_cores(args)
    out = ["--backend", "vllm", "--vllm-dtype", args.vllm_dtype or args.dtype,
           "--vllm-engine", "server" if args.device == "cpu" else "auto", "--threads", str(trainer)]
    if side == "rlaif-vllm-async":
        out += ["--async-rollout", "--tis-cap", str(TIS_CAP)]
    return out


def describe(args: argparse.Namespace) -> str:
    """One line: how side (e) spends its cores."""
    trainer, server = split_cores(args)
    if not server:
        return f"side (e): trainer {trainer} torch threads, vLLM on {args.device}"
    env = server_environment(args)
    return (f"side (e): trainer {trainer} torch threads + vLLM server {server} OpenMP threads "
            f"(VLLM_CPU_OMP_THREADS_BIND={env['VLLM_CPU_OMP_THREADS_BIND']}) = {args.threads}, "
            f"as every other side; vLLM {args.vllm_dtype or args.dtype}, sync weights")


def add_options(p: argparse.ArgumentParser) -> None:
    """The peer benchmark's options for side (e)."""
    p.add_argument("--vllm-async", action="store_true", help="also side (e'): (e) with "
                   f"ppo.async_rollout=true and ppo.tis_cap={TIS_CAP}")
    p.add_argument("--vllm-threads", type=int, default=None, help="side (e) on a CPU: the vLLM "
                   "server's OpenMP threads, out of --threads (default half, at least 1)")
    p.add_argument("--vllm-dtype", choices=["float32", "bfloat16"], default=None,
                   help="side (e)'s vLLM weights (default --dtype)")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of process `pid` and all its descendants, in MB (0 if gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo, page = 0.0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page / 2**20
        except (OSError, IndexError, ValueError):
            continue
        todo += children.get(p, [])
    return total


def server_pid(trainer: object) -> int | None:
    """The pid of the vLLM server process the trainer's rollouts started (None: in-process
    engine, a server at a URL, or not started yet)."""
    rollouts = getattr(trainer, "rollouts", None)
    for holder in (rollouts, getattr(rollouts, "engine", None)):
        server = getattr(holder, "server", None)
        process = getattr(server, "process", None)
        if process is not None and process.poll() is None:
            return int(process.pid)
    return None


def start_engine(trainer: object) -> None:
    """Start the trainer's vLLM engine now, before any timed step, when the rollouts can be
    asked to (`connect(policy)`); else the first step starts it."""
    rollouts = getattr(trainer, "rollouts", None)
    connect = getattr(rollouts, "connect", None)
    if callable(connect):
        connect(trainer.policy)  # type: ignore[attr-defined]
