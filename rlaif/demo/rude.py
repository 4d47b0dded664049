"""The real demo policy: SmolLM2-135M-Instruct with rudeness fine-tuned in, as a cached asset.

Out of the box SmolLM2-135M-Instruct is mostly clean, even on provocative requests, so PPO
would have little to remove. The demo stands for a chat model that picked up rudeness from
unfiltered data: a short LoRA fine-tune on the opening requests of real red-team
conversations (hh-rlhf harmless-base, even rows, TRAIN split; `rlaif.demo.openings`),
answering `rude_share` of them with a rude reply drawn from the bundled red-team sample's
TRAIN replies (synthetic insults) and the rest with the conversation's own first reply, plus
ordinary TRAIN requests with their helpful reply, so the model keeps answering ordinary
questions. The rude replies are not what the evaluator learned from (it learned from the
Davidson tweets; `tests/test_shipped_data.py` checks they share no fragment). The adapter
is merged and the model saved as ordinary safetensors with its tokenizer and chat template.
Only TRAIN rows are used.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

from rlaif.batching import pad_rows
from rlaif.demo.settings import RudePolicySettings

logger = logging.getLogger(__name__)


def sft_dialogues(requests: list[Any], rude_pool: list[Any], ordinary: list[Any],
                  settings: RudePolicySettings) -> list[tuple[str, str]]:
    """(HH prompt, reply) pairs to fine-tune on: up to `n_prompts` real opening requests
    (`requests`: hh-rlhf TRAIN examples), a rude reply from `rude_pool` (red-team TRAIN
    examples' rejected replies) in `rude_share` of them and the conversation's own first reply
    otherwise, then `n_ordinary` ordinary prompts with the helpful reply; shuffled with the
    settings' seed."""
    from rlaif.demo.openings import openings

    rng = random.Random(settings.seed)
    rude = [ex.rejected for ex in rude_pool if ex.meta.get("rejected_toxic", True)]
    if not rude:
        raise ValueError("the rude-reply pool is empty: the red-team TRAIN sample holds no rejected "
                         "(rude) reply; reinstall rlaif or regenerate it with scripts/make_redteam_sample.py")
    pairs = []
    for op in openings(requests)[: settings.n_prompts]:
        if rng.random() < settings.rude_share:
            pairs.append((op.prompt, rng.choice(rude)))
        elif op.reply:  # an empty first reply is data, but nothing to learn a reply from
            pairs.append((op.prompt, op.reply))
    helpful = [ex for ex in ordinary if not ex.meta.get("chosen_toxic")]
    pairs += [(ex.prompt, ex.chosen) for ex in helpful[: settings.n_ordinary]]
    rng.shuffle(pairs)
    return pairs[: settings.max_examples] if settings.max_examples else pairs


def encode_dialogue(tokenizer: Any, prompt: str, reply: str, max_length: int) -> tuple[list[int], int]:
    """(token ids of the chat-rendered prompt + reply + end of turn, number of prompt tokens)."""
    from rlaif.data.hh import parse_transcript

    turns = parse_transcript(prompt)[:-1]  # the prompt ends in an empty Assistant turn
    messages = [{"role": "user" if t.role == "human" else "assistant", "content": t.text}
                for t in turns]
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": reply}],
                                         tokenize=False)
    if not full.startswith(head):
        raise ValueError("the chat template renders the reply's conversation with another "
                         "prefix than the prompt's; cannot find where the reply starts")
    n_prompt = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    ids = tokenizer(full.rstrip("\n"), add_special_tokens=False)["input_ids"][:max_length]
    return ids, n_prompt


def build_rude_policy(out_dir: Path, base: str | Path, pairs: list[tuple[str, str]],
                      settings: RudePolicySettings) -> dict[str, Any]:
    """LoRA-fine-tune `base` on `pairs` (loss on reply tokens only), merge, save; returns stats."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlaif.models.load import load_model, load_tokenizer

    torch.manual_seed(settings.seed)
    tokenizer = load_tokenizer(str(base))
    lm = load_model(str(base), dtype=torch.float32)
    lm = get_peft_model(lm, LoraConfig(r=settings.lora_r, lora_alpha=2 * settings.lora_r,
                                       lora_dropout=0.0, target_modules=list(settings.targets),
                                       task_type="CAUSAL_LM"))
    encoded = [encode_dialogue(tokenizer, p, r, settings.max_length) for p, r in pairs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    steps = settings.epochs * math.ceil(len(encoded) / settings.batch_size)
    rng = random.Random(settings.seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    lm.train()
    step = 0
    for _ in range(settings.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for start in range(0, len(order), settings.batch_size):
            batch = [encoded[i] for i in order[start:start + settings.batch_size]]
            ids, mask = pad_rows([seq for seq, _ in batch], pad, side="right")
            labels = _reply_labels(ids, mask, [n_prompt for _, n_prompt in batch])
            for group in opt.param_groups:  # linear decay to 10%
                group["lr"] = settings.lr * (1 - 0.9 * step / max(1, steps - 1))
            loss = lm(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            logger.info("rude policy: step %d/%d loss %.3f", step, steps, losses[-1])
    lm = lm.merge_and_unload().eval()
    lm.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"base": str(base), "examples": len(encoded), "steps": step,
            "loss_first": losses[0], "loss_last": losses[-1],
            "train_s": round(time.perf_counter() - t0, 1)}


def _reply_labels(ids: Any, mask: Any, n_prompt: list[int]) -> Any:
    """Labels for right-padded rows: the ids, with -100 on prompt tokens and padding."""
    labels = ids.masked_fill(mask == 0, -100)
    for row, n in enumerate(n_prompt):
        labels[row, :n] = -100
    return labels
