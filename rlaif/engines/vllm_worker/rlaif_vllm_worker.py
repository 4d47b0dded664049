"""rlaif's vLLM worker extension: load the tensors training changed, in place, from a file.

This file runs inside vLLM's worker processes, in vLLM's own environment (which need not have
rlaif), so it imports only torch and safetensors. rlaif names it with
`--worker-extension-cls rlaif_vllm_worker.WeightSync` (the server) or
`worker_extension_cls=` (in-process `vllm.LLM`), with this folder on PYTHONPATH, and calls
its method through vLLM's `collective_rpc` (the server: `/collective_rpc`, which needs
VLLM_SERVER_DEV_MODE=1).

    rlaif_load_weights(path)   the safetensors file at `path` (checkpoint names, e.g.
                               model.layers.0.self_attn.q_proj.weight) loaded through vLLM's
                               in-place reload: fused layers (qkv, gate_up) and CPU kernels that
                               repack their weights are rebuilt from the new values. Returns
                               how many tensors it read.
    rlaif_weight_sums()        {name: float sum} of the model's parameters (tests)
"""

from __future__ import annotations

from typing import Any


class WeightSync:
    """Mixed into vLLM's worker class (`worker_extension_cls`); `self` is the worker."""

    model_runner: Any

    def rlaif_load_weights(self, path: str) -> int:
        from safetensors.torch import load_file

        tensors = load_file(path)  # {name: tensor} on CPU; vLLM copies them to its device
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()),
                                         is_checkpoint_format=True)
        return len(tensors)

    def rlaif_weight_sums(self) -> dict[str, float]:
        model = self.model_runner.get_model()
        return {name: float(p.detach().float().sum()) for name, p in model.named_parameters()}
