"""The GPU checks that matter, at the real shapes (seeded random weights, SmolLM2-135M layout):

1. logprobs from generation's captured hidden states vs a forward pass, under bf16 autocast;
2. the frozen-head fused logprobs (`rlaif.ppo.head`) under autocast, values and gradients;
3. two PPO steps and a hold-out evaluation on the device;
4. the shared-prefix forward (`ppo.share_prefix`, `rlaif.models.prefix`) vs the plain one,
   under bf16 autocast, logprobs and LoRA gradients;
6. (`--vllm`, alone; check 5 is gpu_check.sh's peer benchmark) a PPO step on a 1B Llama (seeded random weights) with rollouts from vLLM
   in this process (`generation.backend: vllm`, `generation.vllm.engine: inprocess`,
   bfloat16, sync weights), timed next to the same step with `generation.backend: hf`.

Checks 1, 2 and 4 measure each bf16 path's error against a float32 forward and pass when the
fast path is no less accurate than plain autograd in bf16 (2x its error + a small floor).
Run by `scripts/gpu_check.sh`; `--device cpu` runs the same code on the CPU (CPU autocast)
as a dry run. Prints numbers; exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]


def policy_with_lora(policy_dir: Path, device: str):
    """The benchmark's policy with LoRA r 16 on q/v, adapters moved off zero (seeded)."""
    import torch

    from rlaif.config import LoraSettings
    from rlaif.ppo.policy import PolicyWithValueHead

    policy = PolicyWithValueHead.from_pretrained(
        str(policy_dir), lora=LoraSettings(r=16, alpha=32, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    return policy.to(device).eval()


def check_capture(policy, tokenizer, prompts, device: str, bf16: bool) -> bool:
    """1: captured-state logprobs vs a forward, each under autocast, against a float32 forward."""
    import torch

    from rlaif.models.generate import tokenize_queries

    q, m = tokenize_queries(tokenizer, prompts, 96, device, chat=True)
    kwargs = {"max_new_tokens": 32, "min_new_tokens": 32, "do_sample": True, "top_k": 0,
              "top_p": 1.0, "temperature": 0.7, "pad_token_id": tokenizer.pad_token_id}
    auto = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)
    torch.manual_seed(0)
    with torch.no_grad(), auto:
        resp, states = policy.generate_with_states(q, m, capture=True, **kwargs)
    rmask = torch.ones_like(resp)
    with torch.inference_mode():
        exact = policy.forward_response(q, m, resp, rmask, temperature=0.7).logprobs.float()
        with auto:
            captured = policy.score_states(states, resp, temperature=0.7).logprobs.float()
            forward = policy.forward_response(q, m, resp, rmask, temperature=0.7).logprobs.float()
    err_c = (captured - exact).abs()
    err_f = (forward - exact).abs()
    ok = err_c.mean() <= 2 * err_f.mean() + 1e-3 and err_c.max() <= 2 * err_f.max() + 1e-2
    print(f"[1] captured-state logprobs ({resp.shape[0]} x {resp.shape[1]} tokens, autocast bf16 "
          f"{bf16}): |captured - fp32 forward| mean {err_c.mean():.2e} max {err_c.max():.2e}; "
          f"|bf16 forward - fp32 forward| mean {err_f.mean():.2e} max {err_f.max():.2e} -> "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    return bool(ok)


def check_head(device: str, bf16: bool) -> bool:
    """2: fused frozen-head logprobs and their gradient vs autograd through full logits."""
    import torch

    from rlaif.ppo.head import frozen_head_logprobs

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(576, 49152, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.05)
    head = head.to(device).requires_grad_(False)
    hidden0 = torch.randn(512, 576, generator=g).to(device)
    tokens = torch.randint(0, 49152, (512,), generator=g).to(device)
    weights = torch.rand(512, generator=g).to(device)

    def run(fused: bool, autocast: bool):
        hidden = hidden0.clone().requires_grad_(True)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            if fused:
                lp = frozen_head_logprobs(hidden, head, tokens, temperature=0.7)
            else:
                logits = head(hidden).float() / 0.7
                lp = torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
        (lp.float() * weights).sum().backward()
        return lp.detach().float(), hidden.grad.float()

    exact_lp, exact_grad = run(False, False)
    fused_lp, fused_grad = run(True, bf16)
    plain_lp, plain_grad = run(False, bf16)
    e_lp, p_lp = (fused_lp - exact_lp).abs().max(), (plain_lp - exact_lp).abs().max()
    scale = exact_grad.abs().max()
    e_g, p_g = (fused_grad - exact_grad).abs().max() / scale, (plain_grad - exact_grad).abs().max() / scale
    ok = e_lp <= 2 * p_lp + 1e-4 and e_g <= 2 * p_g + 1e-4
    print(f"[2] frozen-head logprobs (512 x 576 @ 49152, autocast bf16 {bf16}): value max err "
          f"{e_lp:.2e} (autograd bf16 {p_lp:.2e}); grad max rel err {e_g:.2e} (autograd bf16 "
          f"{p_g:.2e}) -> {'ok' if ok else 'FAILED'}", flush=True)
    return bool(ok)


def check_ppo_and_holdout(policy_dir: Path, reward_dir: Path, prompts, device: str, bf16: bool) -> bool:
    """3: two PPO steps on the device (the reward model as judge), then a hold-out evaluation."""
    import math

    import torch
    from peers_rlaif import run_config

    from rlaif.evaluation.holdout import evaluate_holdout
    from rlaif.evaluation.toxicity import ToxicityEvaluator
    from rlaif.judges.registry import build_judge
    from rlaif.ppo.trainer import PPOTrainer

    ns = argparse.Namespace(policy=str(policy_dir), device=device, dtype="bfloat16" if bf16 else "float32",
                            batch=8, mini_batch=4, epochs=1, lr=1e-3, min_new_tokens=16,
                            new_tokens=16, temperature=0.7)
    judge = build_judge({"type": "classifier", "name": "seeded-reward", "model": str(reward_dir),
                         "label": None, "output": "logit", "input": "prompt_response", "device": device})
    trainer = PPOTrainer(run_config(ns, tempfile.mkdtemp(prefix="gpu-check-")), prompts, judge=judge)
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    t0 = time.perf_counter()
    metrics = [trainer.step(prompts[:8]) for _ in range(2)]
    seconds = time.perf_counter() - t0
    moved = sum(not torch.equal(before[n], p.detach()) for n, p in trainer.policy.named_parameters()
                if p.requires_grad)
    finite = all(math.isfinite(m[k]) for m in metrics for k in ("objective/kl", "reward/mean", "ppo/loss/total"))
    print(f"[3] PPO on {trainer.accelerator.device} (mixed precision {trainer.accelerator.mixed_precision}): "
          f"2 steps in {seconds:.1f}s, {moved}/{len(before)} trainable tensors changed, kl "
          f"{metrics[-1]['objective/kl']:.3g}, reward {metrics[-1]['reward/mean']:.3g}", flush=True)
    report = evaluate_holdout(trainer.policy, trainer.policy, trainer.tokenizer, prompts[8:16],
                              ToxicityEvaluator(judge, "scale"), compute_kl=True, progress=False,
                              chat=True, gen_kwargs={"max_new_tokens": 16}, n_boot=200)
    kl = (report.kl or {})
    print(f"[3] hold-out on {trainer.accelerator.device}: {len(report.rows)} prompts scored, "
          f"KL(after || before) of a model with itself {kl}", flush=True)
    ok = moved == len(before) and finite and len(report.rows) == 8
    print(f"[3] -> {'ok' if ok else 'FAILED'}", flush=True)
    return ok


def check_prefix(policy, tokenizer, prompts, device: str, bf16: bool) -> bool:
    """4: shared-prefix vs plain forward under autocast, each against a float32 plain forward."""
    import torch

    from rlaif.models import prefix
    from rlaif.models.generate import tokenize_queries

    q, m = tokenize_queries(tokenizer, prompts, 96, device, chat=True)
    g = torch.Generator().manual_seed(0)
    resp = torch.randint(100, 20_000, (q.size(0), 32), generator=g).to(device)
    rmask = torch.ones_like(resp)
    auto = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)

    def run(share: bool, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        policy.share_prefix = share
        policy.zero_grad()
        with auto if autocast else contextlib.nullcontext():
            out = policy.forward_response(q, m, resp, rmask, temperature=0.7, with_entropy=False)
        out.logprobs.float().sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in policy.named_parameters() if "lora_B" in n])
        return out.logprobs.detach().float(), grads.float()

    n = prefix.usable(policy.model, q, m)
    exact, exact_g = run(False, False)
    plain, plain_g = run(False, True)
    shared, shared_g = run(True, True)
    policy.share_prefix = True
    err_p, err_s = (plain - exact).abs(), (shared - exact).abs()
    rel_p = (plain_g - exact_g).norm() / exact_g.norm()
    rel_s = (shared_g - exact_g).norm() / exact_g.norm()
    ok = bool(n > 0 and err_s.mean() <= 2 * err_p.mean() + 1e-3 and rel_s <= 2 * rel_p + 1e-3)
    print(f"[4] shared prefix ({n} tokens, autocast bf16 {bf16}): |shared - fp32| mean {err_s.mean():.2e} "
          f"max {err_s.max():.2e}, LoRA grad rel {rel_s:.2e}; |plain - fp32| mean {err_p.mean():.2e} "
          f"max {err_p.max():.2e}, grad rel {rel_p:.2e} -> {'ok' if ok else 'FAILED'}", flush=True)
    return ok


def check_vllm(reward_dir: Path, prompts, device: str) -> bool:
    """6: one warm-up and one timed PPO step per backend on the 1B Llama, bf16; the vLLM one
    passes when every metric is finite and the sampler/trainer KL per token is small."""
    import gc
    import math

    import torch
    from peers_models import policy_dir
    from peers_rlaif import run_config

    from rlaif.judges.registry import build_judge
    from rlaif.ppo.trainer import PPOTrainer

    policy = policy_dir("1b")
    judge = build_judge({"type": "classifier", "name": "seeded-reward", "model": str(reward_dir),
                         "label": None, "output": "logit", "input": "prompt_response", "device": device})
    batch, rows = prompts[:16], {}
    for backend in ("hf", "vllm"):
        ns = argparse.Namespace(policy=str(policy), device=device, dtype="bfloat16", batch=16,
                                mini_batch=8, epochs=1, lr=1e-4, min_new_tokens=32, new_tokens=32,
                                temperature=0.7, backend=backend, vllm_engine="inprocess",
                                vllm_sync="auto", vllm_dtype="bfloat16")
        trainer = PPOTrainer(run_config(ns, tempfile.mkdtemp(prefix=f"gpu-check-{backend}-")), prompts,
                             judge=judge)
        try:
            t0 = time.perf_counter()
            trainer.step(batch)  # warm-up: the engine starts, kernels compile
            warm = time.perf_counter() - t0
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            m = trainer.step(batch)
            torch.cuda.synchronize()
            rows[backend] = dict(m, wall=time.perf_counter() - t0, warm=warm)
        finally:
            trainer.close_rollouts()
            del trainer
            gc.collect()
            torch.cuda.empty_cache()
        r = rows[backend]
        print(f"[6] {backend:4s} PPO step on the 1B Llama (bf16, 16 x 32 tokens): warm-up {r['warm']:.1f}s, "
              f"step {r['wall']:.2f}s (generate {r['time/generate']:.2f}s, weight sync "
              f"{r.get('time/weight_sync', 0.0):.2f}s, update {r['time/update']:.2f}s), sampler/trainer "
              f"KL {r.get('rollout/sampler_kl', float('nan')):.2e}", flush=True)
    hf, vl = rows["hf"], rows["vllm"]
    kl = vl.get("rollout/sampler_kl", float("nan"))
    finite = all(math.isfinite(r[k]) for r in (hf, vl) for k in ("objective/kl", "reward/mean", "ppo/loss/total"))
    ok = finite and math.isfinite(kl) and kl < 0.05
    print(f"[6] vLLM in-process vs hf: step {hf['wall'] / vl['wall']:.2f}x, generate "
          f"{hf['time/generate'] / max(vl['time/generate'] + vl.get('time/weight_sync', 0.0), 1e-9):.2f}x "
          f"(hf / vllm, generate + sync); metrics finite {finite}, KL {kl:.2e} (< 5e-2) -> "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    return ok


def main() -> int:
    """Run the checks; non-zero exit if any fails."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-bf16", action="store_true", help="float32 only (CPU dry run)")
    p.add_argument("--vllm", action="store_true", help="only check 5 (vLLM rollouts, in-process)")
    args = p.parse_args()
    import torch
    from peers_models import bench_prompts, policy_dir, reward_dir
    from transformers import AutoTokenizer

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a dry run")
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)  # shared cores: multi-threaded matmuls stall (ppo_step.py)
    bf16 = not args.no_bf16
    if args.vllm:
        if not args.device.startswith("cuda"):
            print("[6] vLLM check skipped: it runs on a GPU (--device cuda)")
            return 0
        try:
            import vllm
        except Exception as exc:  # noqa: BLE001 - said, and the check is skipped
            print(f"[6] vLLM check skipped: import vllm fails here ({type(exc).__name__}: {exc})"
                  .splitlines()[0])
            return 0
        print(f"[6] device {args.device} ({torch.cuda.get_device_name()}), torch {torch.__version__}, "
              f"vllm {vllm.__version__}", flush=True)
        return 0 if check_vllm(reward_dir(policy_dir("135m")), bench_prompts(16), args.device) else 1
    pol = policy_dir("135m")
    rew = reward_dir(pol)
    tokenizer = AutoTokenizer.from_pretrained(pol, padding_side="left")
    prompts = bench_prompts(16)
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
          f"torch {torch.__version__}, policy {pol.name}", flush=True)
    results = [check_capture(policy_with_lora(pol, args.device), tokenizer, prompts[:8], args.device, bf16),
               check_head(args.device, bf16),
               # CPU autocast in bf16 runs a PPO step ~10x slower than float32: the dry run
               # checks the code path in float32 there
               check_ppo_and_holdout(pol, rew, prompts, args.device, bf16 and args.device != "cpu"),
               check_prefix(policy_with_lora(pol, args.device).train(), tokenizer, prompts[:8],
                            args.device, bf16)]
    print(f"GPU checks: {sum(results)} of {len(results)} passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
