"""PPO step time and memory: the walk-through's loop shape vs the rlaif trainer.

Policy: the gpt2-small body (GPT2Config() defaults: 12 layers, 768 wide, 12 heads) with
random weights and a byte-level BPE vocabulary trained here on the bundled HH sample (no
download; capped at 8k, the small sample yields ~1.9k tokens, so the LM head is cheaper than
GPT-2's 50k one), LoRA r=32 on the attention projections, as in the walk-through. `--tiny`
uses the test suite's tiny GPT-2 instead. Both sides get the same 16 HH prompts, the same
sampling settings with min_new_tokens = max_new_tokens = 32 (so response lengths match),
the same cheap offline judge (alt-profanity-check) and the same PPO update code:

  (a) the walk-through's loop shape: one `generate` call per prompt (batch of 1), and the
      reference model a frozen full copy of the policy (`create_reference_model`);
  (b) the rlaif trainer: one left-padded `generate` call for the batch, the reference = the
      same weights with the LoRA adapters disabled.

Time: seconds per PPO step (after one warm-up step each), (a) and (b) alternating in one
process so that load from other processes hits both alike.
Memory: in a fresh child process per side, the peak resident set size (RSS, sampled from
/proc/self/statm every 2 ms by a thread) over model load + one PPO step, minus the RSS
after imports. RSS counts every allocation torch makes on CPU (tensors, autograd buffers,
allocator caches), not only Python objects.

    python benchmarks/ppo_step.py            # gpt2-small shape, a few minutes on 2 cores
    python benchmarks/ppo_step.py --tiny     # tiny GPT-2, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 16
NEW_TOKENS = 32
MAX_PROMPT_TOKENS = 64
VOCAB = 8192
PAGE = os.sysconf("SC_PAGE_SIZE")


def hh_texts(limit: int = 600) -> list[str]:
    """Dialogue prompts from the bundled HH sample (offline)."""
    from rlaif.data.hh import load_hh, make_prompts

    return make_prompts(load_hh("sample", split="train", limit=limit).examples, task="dialogue")


def build_policy_dir(out: Path, tiny: bool) -> Path:
    """Save the benchmark's causal LM (random weights) and its tokenizer into `out`."""
    if tiny:
        from rlaif.testing.tiny import build_tiny_gpt2

        return build_tiny_gpt2(out / "tiny-gpt2")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = out / "gpt2-small-8k"
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(hh_texts(), trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  model_max_length=1024, padding_side="left")
    eos = tok.eos_token_id
    config = GPT2Config(vocab_size=len(tok), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_config(model_dir: Path, run_dir: Path, tiny: bool):
    """The run config both sides share (walk-through PPO settings, LoRA r 32)."""
    from rlaif.config import load_config

    return load_config(data={
        "model": {"name_or_path": str(model_dir),
                  "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["c_attn"]}},
        "judge": {"ref": "profanity-check"},
        "ppo": {"batch_size": BATCH, "mini_batch_size": 4, "ppo_epochs": 1, "steps": 100,
                "learning_rate": 1.41e-5},
        "generation": {"min_new_tokens": NEW_TOKENS, "max_new_tokens": NEW_TOKENS, "top_k": 0,
                       "top_p": 1.0, "do_sample": True},
        "data": {"max_prompt_tokens": 128 if tiny else MAX_PROMPT_TOKENS},
        "output": {"dir": str(run_dir)},
        "accelerate": {"cpu": True},
    })


def walkthrough_shape(trainer) -> None:
    """Turn an rlaif trainer into the walk-through's loop shape (see the module docstring)."""
    import torch

    from rlaif.ppo.policy import PolicyWithValueHead

    policy = trainer.policy
    batched_generate = policy.generate

    def generate_one_by_one(query_ids, query_mask, **gen_kwargs):
        responses = []
        for ids, mask in zip(query_ids, query_mask):
            keep = mask.bool()  # the walk-through passes each prompt unpadded
            responses.append(batched_generate(ids[keep][None], mask[keep][None], **gen_kwargs)[0])
        return torch.stack(responses)  # min = max new tokens: equal lengths

    class CopyReferencePolicy(PolicyWithValueHead):
        @contextlib.contextmanager
        def reference(self):
            yield self.reference_copy

    policy.generate = generate_one_by_one
    reference_copy = copy.deepcopy(policy.model)  # create_reference_model: a frozen full copy
    reference_copy.requires_grad_(False)
    policy.__class__ = CopyReferencePolicy
    policy.reference_copy = reference_copy.eval()


def build_trainer(side: str, model_dir: Path, run_dir: Path, tiny: bool, prompts: list[str]):
    """A PPOTrainer for side "a" (walk-through shape) or "b" (rlaif)."""
    from rlaif.ppo.trainer import PPOTrainer

    trainer = PPOTrainer(make_config(model_dir, run_dir, tiny), prompts=prompts)
    if side == "a":
        walkthrough_shape(trainer)
    return trainer


def pick_prompts(model_dir: Path, tiny: bool) -> list[str]:
    """BATCH prompts of mixed length that fit the prompt budget."""
    from transformers import AutoTokenizer

    from rlaif.data.hh import filter_by_length

    texts = hh_texts()
    tok = AutoTokenizer.from_pretrained(model_dir)
    keep = filter_by_length(texts, tok, 128 if tiny else MAX_PROMPT_TOKENS, 8)
    return [texts[i] for i in keep[:BATCH]]


def time_steps(model_dir: Path, work: Path, tiny: bool, repeats: int) -> dict[str, list[float]]:
    """Seconds per PPO step for both sides, alternating, after one warm-up step each."""
    import torch

    prompts = pick_prompts(model_dir, tiny)
    trainers = {side: build_trainer(side, model_dir, work / f"run-{side}", tiny, prompts)
                for side in ("a", "b")}
    times: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(repeats + 1):
        for side, trainer in trainers.items():
            torch.manual_seed(i)
            start = time.perf_counter()
            m = trainer.step(prompts)
            elapsed = time.perf_counter() - start
            assert m["response/length"] == NEW_TOKENS, m["response/length"]
            if i:  # step 0 warms up caches and kernels
                times[side].append(elapsed)
                print(f"  step {i} ({side}): {elapsed:6.2f}s  generate {m['time/generate']:6.2f}s  "
                      f"judge {m['time/judge']:.2f}s  update {m['time/update']:6.2f}s", flush=True)
    return times


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


class PeakRSS:
    """Samples the RSS every 2 ms in a thread and keeps the maximum."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def memory_child(side: str, model_dir: Path, run_dir: Path, tiny: bool) -> None:
    """Child process: print {"baseline_mb", "peak_mb"} for one side (model load + one step)."""
    # Libraries load before the baseline: it is the run that is measured, not the imports.
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    import profanity_check  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from rlaif.judges import function as _function  # noqa: F401
    from rlaif.ppo import trainer as _trainer  # noqa: F401

    prompts = pick_prompts(model_dir, tiny)
    baseline = rss_mb()
    with PeakRSS() as peak:
        trainer = build_trainer(side, model_dir, run_dir, tiny, prompts)
        trainer.step(prompts)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak.peak}))


def measure_memory(side: str, model_dir: Path, work: Path, tiny: bool) -> dict[str, float]:
    """Run `memory_child` in a fresh process (peak RSS is per process)."""
    cmd = [sys.executable, __file__, "--memory-child", side, "--model-dir", str(model_dir),
           "--work", str(work / f"mem-{side}")] + (["--tiny"] if tiny else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"memory child ({side}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny GPT-2 instead of gpt2-small")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per side")
    parser.add_argument("--memory-child", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.model_dir, args.work, args.tiny)
        return

    import torch

    with tempfile.TemporaryDirectory(prefix="rlaif-ppo-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_policy_dir(work, args.tiny)
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model_dir)
        print(f"policy: {'tiny GPT-2' if args.tiny else 'gpt2-small body'} (n_layer {cfg.n_layer}, "
              f"n_embd {cfg.n_embd}, vocab {cfg.vocab_size}), random weights, LoRA r 32; "
              f"batch {BATCH}, {NEW_TOKENS} new tokens; torch threads {torch.get_num_threads()}")
        times = time_steps(model_dir, work, args.tiny, args.repeats)
        mem = {side: measure_memory(side, model_dir, work, args.tiny) for side in ("a", "b")}

    mean = {side: sum(v) / len(v) for side, v in times.items()}
    added = {side: m["peak_mb"] - m["baseline_mb"] for side, m in mem.items()}
    print()
    print(f"{'':44s} {'(a) walk-through':>17s} {'(b) rlaif':>10s} {'ratio':>8s}")
    print(f"{'seconds per PPO step (mean)':44s} {mean['a']:17.2f} {mean['b']:10.2f} "
          f"{mean['a'] / mean['b']:7.2f}x faster")
    print(f"{'peak RSS added by model + one step (MB)':44s} {added['a']:17.0f} {added['b']:10.0f} "
          f"{added['b'] / added['a']:7.2f}x memory")
    print(f"{'  (peak RSS of the process, MB)':44s} {mem['a']['peak_mb']:17.0f} "
          f"{mem['b']['peak_mb']:10.0f}")
    print(f"\ntargets: >= 3x faster step -> {'met' if mean['a'] / mean['b'] >= 3 else 'NOT met'}; "
          f"<= 0.6x memory -> {'met' if added['b'] / added['a'] <= 0.6 else 'NOT met'}")


if __name__ == "__main__":
    main()
