"""The machine's own limits at the model's shapes, and how close rlaif's step comes to them.

- matmul peak: torch `mm` FLOP/s (2·M·K·N per product) at the shapes the PPO update runs
  (minibatch tokens × the model's projections and the vocabulary head), same dtype, same
  device and threads; the best shape is the peak. MFU = the update's counted FLOPs
  (`FlopCounterMode` over the real update: forward, backward through the frozen base to
  the activations, LoRA weight gradients, the frozen-head logprobs) / its seconds / the peak.
- memory bandwidth: a large tensor copy, bytes read + bytes written per second. Generation
  must read every weight of the decoder once per new token (the embedding lookup reads only
  rows and is left out; the KV cache and activations are not counted, so the achieved figure
  is a lower bound): weight bytes × new tokens / generation seconds.
"""

from __future__ import annotations

import time
from typing import Any


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_seconds(fn: Any, device: str, repeats: int, min_seconds: float = 0.2) -> float:
    """Best per-call time of `fn` over `repeats` timed batches of calls."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    one = max(time.perf_counter() - t0, 1e-6)
    calls = max(1, int(min_seconds / one))
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def matmul_shapes(config: Any, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of the update's matmuls: `tokens` rows against each projection and the head."""
    h, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    kv = h * config.num_key_value_heads // config.num_attention_heads
    return [(tokens, h, h), (tokens, h, kv), (tokens, h, inter), (tokens, inter, h),
            (tokens, h, vocab)]


def matmul_peak(shapes: list[tuple[int, int, int]], *, device: str = "cpu",
                dtype: Any = None, repeats: int = 3) -> dict[str, Any]:
    """Measured FLOP/s of `torch.mm` per shape and the best of them (the peak)."""
    import torch

    dtype = dtype or torch.float32
    rows = []
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        seconds = _best_seconds(lambda a=a, b=b: torch.mm(a, b), device, repeats)
        rows.append({"shape": (m, k, n), "flops_per_s": 2 * m * k * n / seconds})
    return {"rows": rows, "peak": max(r["flops_per_s"] for r in rows)}


def copy_bandwidth(*, device: str = "cpu", megabytes: int = 256, repeats: int = 3) -> float:
    """Bytes per second that a large tensor copy reads and writes."""
    import torch

    n = megabytes * 2**20 // 4
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), device, repeats, min_seconds=0.5)
    return 2 * n * 4 / seconds


def decode_weight_bytes(model_dir: str, *, bytes_per_param: int = 4) -> int:
    """Weight bytes one decoding step reads: every decoder weight and the LM head once
    (tied head: the embedding matrix counted once, as the head; the lookup itself reads rows)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    h, inter, vocab = c.hidden_size, c.intermediate_size, c.vocab_size
    kv = h * c.num_key_value_heads // c.num_attention_heads
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * inter + 2 * h  # q, o; k, v; MLP; two norms
    params = c.num_hidden_layers * per_layer + h + h * vocab
    return params * bytes_per_param


def model_config(model_dir: str) -> Any:
    """The policy's transformers config."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir)
