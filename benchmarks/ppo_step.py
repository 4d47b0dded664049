"""PPO step time and memory: the walk-through's loop shape vs the rlaif trainer.

Policy: gpt2-small (`GPT2Config()` defaults: 12 layers, 768 wide, 12 heads, 1024 positions,
50257-token vocabulary, 124M parameters) with random weights. No download: a byte-level BPE
is trained here on the bundled HH sample (~1.9k tokens; the small sample supports no more)
and padded with placeholder tokens to GPT-2's 50257, so the LM head has GPT-2's real size and
every sampled id decodes. `--tiny` uses the test suite's tiny GPT-2 instead. LoRA r 32 on
`c_attn`. Both sides get the same 16 HH prompts, the same sampling (top_k 0, top_p 1.0,
min_new_tokens = max_new_tokens = 32, so response lengths match), the same cheap offline
judge (alt-profanity-check), the same PPO settings (batch 16, minibatch 4, 1 PPO epoch,
lr 1.41e-5) and the same update code (rlaif's losses, AdamW, clipping).

(a) the walk-through's loop shape (TRL's classic PPOTrainer, as the SageMaker walk-through
    drove it), each choice as TRL made it:
    - one `generate` call per prompt (batch of 1, unpadded, KV cache on), as the loop
      `for query in query_tensors: ppo_trainer.generate(query, ...)` did;
    - the reference is a frozen full copy of the policy (`create_reference_model`);
    - `step()` runs the rollout forwards (policy logprobs + values, then the reference) in
      chunks of `mini_batch_size` (TRL's `batched_forward_pass` used fbs = mini_batch_size);
    - every forward (rollout and update) is TRL's value-head model: logits and values at
      every position of query + response, log-softmax over all of them, then the response
      part is sliced out; sequences stay padded to the longest in the whole batch.
(b) the rlaif trainer with its defaults: one left-padded `generate` call for the batch,
    sampling by inverse CDF; the policy's rollout logprobs and values from the hidden states
    generation computed (no policy forward); the reference = the same weights with the LoRA
    adapters disabled, run under inference_mode in length-sorted chunks of mini_batch_size,
    each trimmed to its longest sample, logits only for response positions; the update's
    logprobs through the frozen head without (N, V) logits (see docs/DESIGN.md).

Time: seconds per PPO step (after one warm-up step each), (a) and (b) alternating in one
process (same torch threads) so that load from other processes hits both alike. Torch runs
one thread by default (`--threads`): on a machine whose cores other processes also use,
multi-threaded matmuls stall at thread barriers whenever a core is taken (measured here under
load: a 16-row matmul 15x slower on 2 threads than on 1, a 1-row one not), which says more
about the neighbours than about either loop.
Memory: the reference alone is varied: the rlaif trainer with LoRA + adapter-disabled
reference vs the same trainer with LoRA + a full frozen reference copy (everything else
equal). In a fresh child process per side: the peak resident set size (RSS, sampled from
/proc/self/statm every 2 ms by a thread) over model load + one PPO step, minus the RSS after
imports. RSS counts every allocation torch makes on CPU (weights, tensors, autograd buffers)
and, with glibc's default malloc, also freed blocks malloc keeps for reuse: its mmap
threshold grows to the largest block freed so far (up to 32 MB), after which big tensors
come from the heap and stay counted once freed, by chance of allocation order. The headline
therefore runs the children with `MALLOC_MMAP_THRESHOLD_=131072` (a fixed threshold: every
block over 128 kB is returned to the system when freed), so the peak is the memory the
step really holds; the glibc default is printed beside it. Both with and without
`model.gradient_checkpointing` (both sides alike).

    python benchmarks/ppo_step.py            # gpt2-small, ~10 minutes on 2 shared cores
    python benchmarks/ppo_step.py --tiny     # tiny GPT-2, well under a minute
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 16
MINI_BATCH = 4
NEW_TOKENS = 32
MAX_PROMPT_TOKENS = 64
GPT2_VOCAB = 50257
PAGE = os.sysconf("SC_PAGE_SIZE")
MMAP_THRESHOLD = 128 * 1024  # bytes; see the module docstring
MEMORY_ROWS = [(fixed, ckpt) for fixed in (True, False) for ckpt in (False, True)]


def hh_texts(limit: int = 600) -> list[str]:
    """Dialogue prompts from the bundled HH sample (offline)."""
    from rlaif.data.hh import load_hh
    from rlaif.data.prompts import make_prompts

    return make_prompts(load_hh("sample", split="train", limit=limit).examples, task="dialogue")


def build_policy_dir(out: Path, tiny: bool) -> Path:
    """Save the benchmark's causal LM (random weights) and its tokenizer into `out`."""
    if tiny:
        from rlaif.testing.tiny import build_tiny_gpt2

        return build_tiny_gpt2(out / "tiny-gpt2")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = out / "gpt2-small"
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(hh_texts(), trainers.BpeTrainer(
        vocab_size=GPT2_VOCAB, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # Placeholders up to GPT-2's vocabulary, as ordinary BPE vocabulary entries (like GPT-2's
    # own 50257, no merges lead to them): the model keeps GPT-2's 50257-row LM head and any
    # id the random policy samples decodes to some text for the judge. (As added tokens they
    # would cost ~80 MB of matching machinery that GPT-2's real tokenizer does not have.)
    spec = json.loads(raw.to_str())
    vocab = spec["model"]["vocab"]
    vocab.update({f"<x{i}>": len(vocab) + i for i in range(GPT2_VOCAB - len(vocab))})
    raw = Tokenizer.from_str(json.dumps(spec))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  model_max_length=1024, padding_side="left")
    eos = tok.eos_token_id
    config = GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    assert config.vocab_size == len(tok) == GPT2_VOCAB
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_config(side: str, model_dir: Path, run_dir: Path, tiny: bool, checkpointing: bool = False):
    """The run config: walk-through PPO settings, LoRA r 32; (a) forwards mini_batch_size at a time."""
    from rlaif.config import load_config

    return load_config(data={
        "model": {"name_or_path": str(model_dir), "gradient_checkpointing": checkpointing,
                  "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["c_attn"]}},
        "judge": {"ref": "profanity-check"},
        "ppo": {"batch_size": BATCH, "mini_batch_size": MINI_BATCH, "ppo_epochs": 1, "steps": 100,
                "learning_rate": 1.41e-5,
                # TRL's batched_forward_pass: fbs = mini_batch_size, in batch order; rlaif: its
                # default (mini_batch_size too, taken in order of length)
                "forward_batch_size": MINI_BATCH if side == "a" else None,
                # TRL scored the rollout with a separate policy forward
                "rollout_logprobs": "forward" if side == "a" else "auto"},
        "generation": {"min_new_tokens": NEW_TOKENS, "max_new_tokens": NEW_TOKENS, "top_k": 0,
                       "top_p": 1.0, "do_sample": True,
                       # TRL sampled inside transformers' generate (torch.multinomial)
                       "sampler": "multinomial" if side == "a" else "inverse_cdf"},
        "data": {"max_prompt_tokens": 128 if tiny else MAX_PROMPT_TOKENS},
        "output": {"dir": str(run_dir)},
        "accelerate": {"cpu": True},
    })


def trl_forward(policy: Any, lm: Any, query_ids: Any, query_mask: Any, response_ids: Any,
                response_mask: Any, *, with_values: bool, temperature: float) -> Any:
    """TRL's value-head forward + `batched_forward_pass`: logits, log-softmax, entropy and values
    at every position of the padded query + response, then the response part sliced out."""
    import torch

    from rlaif.models.logprobs import entropy_from_logits
    from rlaif.ppo.policy import ResponseOutput

    q_len = query_ids.size(1)
    input_ids = torch.cat([query_ids, response_ids], dim=1)  # (B, L)
    attention_mask = torch.cat([query_mask, response_mask], dim=1)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
             output_hidden_states=True, use_cache=False)
    logits = out.logits[:, :-1] / temperature  # (B, L - 1, V)
    logp = torch.log_softmax(logits, dim=-1)  # TRL's logprobs_from_logits: the full (B, L-1, V)
    logprobs = torch.gather(logp, 2, input_ids[:, 1:, None]).squeeze(-1)  # (B, L - 1)
    entropy = entropy_from_logits(logits.detach())  # TRL's loss: over every position
    values = policy.value_head(out.hidden_states[-1]).squeeze(-1)[:, :-1] if with_values else None
    part = slice(q_len - 1, None)  # position q_len - 1 + t predicts response token t
    return ResponseOutput(logprobs=logprobs[:, part], entropy=entropy[:, part],
                          values=values[:, part] if values is not None else None)


def walkthrough_shape(trainer: Any) -> None:
    """Turn an rlaif trainer into the walk-through's loop shape (see the module docstring)."""
    import torch

    from rlaif.ppo.policy import PolicyWithValueHead

    policy = trainer.policy

    class WalkthroughPolicy(PolicyWithValueHead):
        generate_calls = 0

        @contextlib.contextmanager
        def reference(self):
            yield self.reference_copy

        def generate_with_states(self, query_ids, query_mask, *, capture=True, **gen_kwargs):
            assert not capture, "the walk-through scores its rollout with a forward pass"
            responses = []
            for ids, mask in zip(query_ids, query_mask):
                keep = mask.bool()  # the walk-through passes each prompt unpadded
                one, _ = super().generate_with_states(ids[keep][None], mask[keep][None],
                                                      capture=False, **gen_kwargs)
                responses.append(one[0])
                self.generate_calls += 1
            return torch.stack(responses), None  # min = max new tokens: equal lengths

        def forward_response(self, query_ids, query_mask, response_ids, response_mask, *,
                             reference=False, with_values=True, with_entropy=True,
                             temperature=1.0):
            # TRL computed the entropy on every forward, whether used or not.
            if reference:
                with torch.no_grad():
                    return trl_forward(self, self.reference_copy, query_ids, query_mask,
                                       response_ids, response_mask, with_values=False,
                                       temperature=temperature)
            return trl_forward(self, self.model, query_ids, query_mask, response_ids, response_mask,
                               with_values=with_values, temperature=temperature)

    add_reference_copy(policy)
    policy.__class__ = WalkthroughPolicy


def add_reference_copy(policy: Any) -> None:
    """Give a LoRA policy a frozen full copy as its reference (`create_reference_model`)."""
    from rlaif.ppo.policy import PolicyWithValueHead

    class CopyReferencePolicy(PolicyWithValueHead):
        @contextlib.contextmanager
        def reference(self):
            yield self.reference_copy

    reference_copy = copy.deepcopy(policy.model)
    reference_copy.requires_grad_(False)
    policy.reference_copy = reference_copy.eval()
    policy.__class__ = CopyReferencePolicy


def build_trainer(side: str, model_dir: Path, run_dir: Path, tiny: bool, prompts: list[str],
                  checkpointing: bool = False):
    """A PPOTrainer: "a" walk-through shape, "b" rlaif, "copy" rlaif with a full reference copy."""
    from rlaif.ppo.trainer import PPOTrainer

    trainer = PPOTrainer.build(make_config(side, model_dir, run_dir, tiny, checkpointing), prompts=prompts)
    if side == "a":
        walkthrough_shape(trainer)
    elif side == "copy":
        add_reference_copy(trainer.policy)
    return trainer


def pick_prompts(model_dir: Path, tiny: bool) -> list[str]:
    """BATCH prompts of mixed length that fit the prompt budget."""
    from transformers import AutoTokenizer

    from rlaif.data.prompts import filter_by_length

    texts = hh_texts()
    tok = AutoTokenizer.from_pretrained(model_dir)
    keep = filter_by_length(texts, tok, 128 if tiny else MAX_PROMPT_TOKENS, 8)
    return [texts[i] for i in keep[:BATCH]]


def time_steps(model_dir: Path, work: Path, tiny: bool, repeats: int) -> dict[str, list[dict]]:
    """Timings of PPO steps for both sides, alternating, after one warm-up step each."""
    import torch

    prompts = pick_prompts(model_dir, tiny)
    trainers = {side: build_trainer(side, model_dir, work / f"run-{side}", tiny, prompts)
                for side in ("a", "b")}
    times: dict[str, list[dict]] = {"a": [], "b": []}
    for i in range(repeats + 1):
        for side, trainer in trainers.items():
            torch.manual_seed(i)
            start = time.perf_counter()
            calls = getattr(trainer.policy, "generate_calls", 0)
            m = trainer.step(prompts)
            elapsed = time.perf_counter() - start
            assert m["response/length"] == NEW_TOKENS, m["response/length"]
            # (a) made one generate call per prompt, (b) one for the batch (which it hooked)
            assert getattr(trainer.policy, "generate_calls", BATCH) - calls == BATCH
            assert trainer.capture_states is (side == "b"), side
            if i:  # step 0 warms up caches and kernels
                times[side].append({"step": elapsed, "generate": m["time/generate"],
                                    "judge": m["time/reward"], "update": _forwards_and_update(m)})
                print(f"  step {i} ({side}): {elapsed:6.2f}s  generate {m['time/generate']:6.2f}s  "
                      f"judge {m['time/reward']:.2f}s  forwards + update {_forwards_and_update(m):6.2f}s",
                      flush=True)
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


def memory_child(side: str, model_dir: Path, run_dir: Path, tiny: bool, checkpointing: bool) -> None:
    """Child process: print {"baseline_mb", "peak_mb"} for one side (model load + one step)."""
    # Libraries load before the baseline: it is the run that is measured, not the imports.
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    import profanity_check  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from rlaif.judges.local import function as function as _function  # noqa: F401
    from rlaif.ppo import trainer as _trainer  # noqa: F401

    prompts = pick_prompts(model_dir, tiny)
    baseline = rss_mb()
    with PeakRSS() as peak:
        trainer = build_trainer(side, model_dir, run_dir, tiny, prompts, checkpointing)
        trainer.step(prompts)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak.peak}))


def measure_memory(side: str, model_dir: Path, work: Path, tiny: bool, checkpointing: bool,
                   fixed_mmap_threshold: bool) -> float:
    """Peak RSS added by model load + one step, in a fresh process (peak RSS is per process)."""
    import torch

    cmd = [sys.executable, __file__, "--memory-child", side, "--model-dir", str(model_dir),
           "--work", str(work / f"mem-{side}-{int(checkpointing)}-{int(fixed_mmap_threshold)}"),
           "--threads", str(torch.get_num_threads())]
    cmd += (["--tiny"] if tiny else []) + (["--checkpointing"] if checkpointing else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if fixed_mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        raise RuntimeError(f"memory child ({side}) failed:\n{proc.stderr[-3000:]}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    return m["peak_mb"] - m["baseline_mb"]


def _forwards_and_update(m: dict) -> float:
    """The rollout's forward passes (policy, reference), advantages and the PPO epochs."""
    return sum(m[k] for k in ("time/old_logprobs", "time/ref", "time/advantages", "time/update"))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny GPT-2 instead of gpt2-small")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--skip-time", action="store_true", help="memory only")
    parser.add_argument("--skip-memory", action="store_true", help="time only")
    parser.add_argument("--memory-child", choices=["copy", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.model_dir, args.work, args.tiny, args.checkpointing)
        return

    with tempfile.TemporaryDirectory(prefix="rlaif-ppo-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_policy_dir(work, args.tiny)
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model_dir)
        print(f"policy: {'tiny GPT-2' if args.tiny else 'gpt2-small'} (n_layer {cfg.n_layer}, "
              f"n_embd {cfg.n_embd}, vocab {cfg.vocab_size}), random weights, LoRA r 32 on c_attn; "
              f"batch {BATCH}, minibatch {MINI_BATCH}, {NEW_TOKENS} new tokens; "
              f"torch threads {torch.get_num_threads()}", flush=True)
        times = {} if args.skip_time else time_steps(model_dir, work, args.tiny, args.repeats)
        mem = {} if args.skip_memory else {
            (side, fixed, ckpt): measure_memory(side, model_dir, work, args.tiny, ckpt, fixed)
            for fixed, ckpt in MEMORY_ROWS for side in ("copy", "b")}

    print()
    if times:
        mean = {side: {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
                for side, rows in times.items()}
        print(f"{'time per PPO step, mean of ' + str(args.repeats) + ' (s)':40s} "
              f"{'(a) walk-through':>17s} {'(b) rlaif':>10s} {'ratio':>8s}")
        for key, label in (("generate", "  generate"), ("judge", "  judge"),
                           ("update", "  rollout forwards + PPO update"), ("step", "  whole step")):
            a, b = mean["a"][key], mean["b"][key]
            print(f"{label:40s} {a:17.2f} {b:10.2f} {a / b:7.2f}x")
        speedup = mean["a"]["step"] / mean["b"]["step"]
        print(f"target >= 3x faster step: {speedup:.2f}x -> {'met' if speedup >= 3 else 'NOT met'}\n")
    if mem:
        print(f"{'peak RSS added by model + one step (MB)':44s} {'full ref copy':>13s} "
              f"{'LoRA ref':>10s} {'ratio':>8s}")
        for fixed, ckpt in MEMORY_ROWS:
            copy_mb, lora_mb = mem[("copy", fixed, ckpt)], mem[("b", fixed, ckpt)]
            label = (f"  {'fixed mmap threshold' if fixed else 'glibc default malloc'}, "
                     f"checkpointing {'on' if ckpt else 'off'}")
            print(f"{label:44s} {copy_mb:13.0f} {lora_mb:10.0f} {lora_mb / copy_mb:7.2f}x")
        ratio = mem[("b", True, False)] / mem[("copy", True, False)]
        print(f"target <= 0.6x memory (fixed mmap threshold, checkpointing off, the default "
              f"config): {ratio:.2f}x -> {'met' if ratio <= 0.6 else 'NOT met'}")

if __name__ == "__main__":
    main()

