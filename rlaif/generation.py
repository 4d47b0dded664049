"""Load a language model from whatever the user has at hand; generate; estimate KL.

Accepted: a hub id or model folder, an in-memory Hugging Face model (or peft model), an
rlaif policy object, a PPO run folder (`<run>/checkpoints/latest`) or one checkpoint folder
(a LoRA adapter or a full model, saved by `rlaif.ppo.policy.PolicyWithValueHead.save`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_POLICY_ATTRS = ("module", "pretrained_model", "model", "lm", "policy")


def resolve_checkpoint(path: str | Path) -> Path:
    """The policy folder of a run (its latest checkpoint), of a step-N checkpoint, or `path`.

    PPO runs save `<run>/checkpoints/latest` (a file naming `step-N`) and
    `step-N/policy/` (adapter or model, value_head.pt, policy.json); see rlaif.ppo.checkpoint.
    """
    from rlaif.ppo.checkpoint import POLICY_DIR, latest_checkpoint

    p = Path(path)
    if (p / "checkpoints").is_dir():
        found = latest_checkpoint(p)
        if found is None or not found.is_dir():
            raise FileNotFoundError(
                f"{p} looks like a run folder but checkpoints/latest names no checkpoint folder "
                f"({found}); pass a checkpoint folder instead "
                f"(one of {sorted(c.name for c in (p / 'checkpoints').iterdir())})"
            )
        p = found
    if (p / POLICY_DIR).is_dir():
        p = p / POLICY_DIR
    return p


def _is_lm(obj: Any) -> bool:
    return hasattr(obj, "generate") and hasattr(obj, "config") and hasattr(obj, "parameters")


def _unwrap(obj: Any, depth: int = 0) -> Any:
    """The generating LM inside an rlaif policy, a DDP wrapper, or the object itself."""
    from transformers import PreTrainedModel

    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but keep plain models working without it
        PeftModel = PreTrainedModel  # noqa: N806
    if isinstance(obj, (PreTrainedModel, PeftModel)):
        return obj
    # A wrapper (rlaif's PolicyWithValueHead, torch DDP) may have its own generate() with
    # another signature: prefer the LM it holds.
    for attr in _POLICY_ATTRS:
        inner = getattr(obj, attr, None)
        if inner is not None and inner is not obj and depth < 3:
            try:
                return _unwrap(inner, depth + 1)
            except TypeError:
                continue
    if _is_lm(obj):
        return obj
    raise TypeError(
        f"cannot generate with a {type(obj).__name__}: pass a model id/folder, a Hugging Face "
        f"model, an rlaif policy, or a run folder"
    )


def _base_name(folder: Path) -> str | None:
    """The base model a checkpoint was trained from, from its json metadata."""
    for name in ("adapter_config.json", "policy.json", "rlaif_policy.json", "policy_config.json"):
        f = folder / name
        if f.is_file():
            data = json.loads(f.read_text())
            for key in ("base_model_name_or_path", "base_model", "model_name", "model"):
                if isinstance(data.get(key), str):
                    return data[key]
    return None


def _load_from_path(path: Path | str) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    p = Path(path)
    if p.is_dir():
        p = resolve_checkpoint(p)
        if (p / "value_head.pt").is_file():  # saved by rlaif's PPO policy
            from rlaif.ppo.policy import PolicyWithValueHead

            return _unwrap(PolicyWithValueHead.load(p, with_reference=False))
        if (p / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

            task = json.loads((p / "adapter_config.json").read_text()).get("task_type")
            cls = AutoPeftModelForSeq2SeqLM if task == "SEQ_2_SEQ_LM" else AutoPeftModelForCausalLM
            return cls.from_pretrained(p)
    source = str(p) if Path(path).exists() else str(path)
    config = AutoConfig.from_pretrained(source)
    cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return cls.from_pretrained(source)


def _load_tokenizer(model_ref: Any, lm: Any) -> Any:
    from transformers import AutoTokenizer

    candidates: list[str] = []
    if isinstance(model_ref, (str, Path)):
        p = Path(model_ref)
        folder = resolve_checkpoint(p) if p.is_dir() else None
        if folder is not None:
            candidates += [str(folder), str(p)]
            base = _base_name(folder)
            if base:
                candidates.append(base)
        else:
            candidates.append(str(model_ref))
    name = getattr(lm.config, "name_or_path", None) or getattr(lm.config, "_name_or_path", None)
    if name:
        candidates.append(str(name))
    errors = []
    for c in candidates:
        try:
            return AutoTokenizer.from_pretrained(c)
        except (OSError, ValueError) as exc:
            errors.append(f"{c}: {exc}")
    raise FileNotFoundError(
        "no tokenizer found for the model; tried " + "; ".join(errors or ["nothing"])
        + ". Pass tokenizer= (a folder or hub id) explicitly"
    )


@dataclass
class Generation:
    """Decoded responses plus the token ids behind them (for KL estimates), and the LM used."""

    texts: list[str]
    prompt_ids: list[list[int]]  # unpadded, as the model saw them (after truncation)
    response_ids: list[list[int]]  # up to and including the first EOS, no padding
    lm: Any = None
    tokenizer: Any = None
    is_seq2seq: bool = False


def _until_eos(ids: list[int], lm: Any, tok: Any) -> list[int]:
    """Cut a generated row after its first EOS (what follows is padding)."""
    eos = getattr(lm.generation_config, "eos_token_id", None) or tok.eos_token_id
    eos_set = set(eos) if isinstance(eos, (list, tuple)) else {eos}
    for k, token in enumerate(ids):
        if token in eos_set:
            return ids[: k + 1]
    return ids


def sequence_kl(policy: Any, reference: Any, gen: Generation, *, batch_size: int = 16,
                kind: str = "k1") -> list[float]:
    """Per response: sum over its tokens of the KL(policy || reference) estimate `kind`.

    The responses must be sampled from `policy` (plain sampling: temperature 1, no top-k or
    top-p truncation) for the k1 mean to be an unbiased KL estimate; both models must share
    the tokenizer.
    """
    import torch

    from rlaif.ppo.core import kl_penalty, logprobs_from_logits

    policy, reference = _unwrap(policy), _unwrap(reference)
    device = next(policy.parameters()).device
    pad = gen.tokenizer.pad_token_id if gen.tokenizer.pad_token_id is not None else 0
    out: list[float] = []
    for s in range(0, len(gen.texts), batch_size):
        p_ids, r_ids = gen.prompt_ids[s:s + batch_size], gen.response_ids[s:s + batch_size]
        width = max(1, max(len(r) for r in r_ids))
        if gen.is_seq2seq:
            enc = _right_pad(p_ids, pad, device)
            start = int(policy.config.decoder_start_token_id)
            labels = _right_pad([r or [pad] for r in r_ids], pad, device, width)
            dec_in = torch.cat([torch.full_like(labels[0][:, :1], start), labels[0][:, :-1]], dim=1)
            mask = _right_pad([[1] * len(r) for r in r_ids], 0, device, width)[0]  # (B, R)
            tokens = labels[0]  # (B, R)

            def logps(m: Any) -> Any:
                logits = m(input_ids=enc[0], attention_mask=enc[1], decoder_input_ids=dec_in).logits
                return logprobs_from_logits(logits.float(), tokens)  # (B, R)
        else:
            seqs = [p + r for p, r in zip(p_ids, r_ids)]
            ids, attn = _right_pad(seqs, pad, device)
            tokens = ids[:, 1:]  # token t is predicted at position t - 1
            mask = torch.zeros_like(tokens)
            for row, (p, r) in enumerate(zip(p_ids, r_ids)):
                mask[row, len(p) - 1: len(p) - 1 + len(r)] = 1

            def logps(m: Any) -> Any:
                logits = m(input_ids=ids, attention_mask=attn).logits[:, :-1]
                return logprobs_from_logits(logits.float(), tokens)  # (B, T - 1)
        with torch.inference_mode():
            kl = kl_penalty(logps(policy), logps(reference), kind)  # type: ignore[arg-type]
        out.extend((kl * mask).sum(dim=1).tolist())
    return out


def _right_pad(rows: list[list[int]], pad: int, device: Any, width: int | None = None) -> tuple[Any, Any]:
    """(ids, attention_mask), right-padded to the longest row (or `width`)."""
    import torch

    width = width or max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
    return ids.to(device), attn.to(device)


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, gen_kwargs: dict[str, Any],
             seed: int = 0, batch_size: int = 16, progress: bool = True,
             device: str | None = None) -> Generation:
    """Generate one response per prompt (causal: left-padded, prompt stripped; or seq2seq)."""
    import torch
    from tqdm.auto import tqdm

    lm, tok, is_seq2seq = load_lm(model, tokenizer, device=device)
    kwargs = dict(gen_kwargs)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # GPT-2 style tokenizers ship without a pad token
    kwargs.setdefault("pad_token_id", tok.pad_token_id)
    max_len = _max_prompt_tokens(lm, tok, int(kwargs.get("max_new_tokens", 32)), is_seq2seq)
    saved_sides = (tok.padding_side, tok.truncation_side)
    if not is_seq2seq:
        # Causal LMs continue the right end: pad and truncate on the left so every prompt's
        # last token sits next to the first generated one and the dialogue's end is kept.
        tok.padding_side, tok.truncation_side = "left", "left"
    param_device = next(lm.parameters()).device
    # Length-sorted batches waste less compute on padding; results go back in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = Generation([""] * len(prompts), [[] for _ in prompts], [[] for _ in prompts], lm, tok, is_seq2seq)
    was_training = lm.training
    lm.eval()
    try:
        # fork_rng: the caller's RNG stream (e.g. the PPO trainer's) is left untouched, and the
        # same seed gives the same samples before and after training.
        with torch.random.fork_rng(devices=[param_device] if param_device.type == "cuda" else []):
            torch.manual_seed(seed)
            batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
            for idx in tqdm(batches, desc="generate", unit="batch", disable=not progress):
                enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                          truncation=True, max_length=max_len).to(param_device)
                with torch.inference_mode():
                    gen = lm.generate(**enc, **kwargs)  # (B, T_in + T_new) or (B, T_new)
                # seq2seq output starts with the decoder start token; causal with the prompt
                new = gen[:, 1:] if is_seq2seq else gen[:, enc["input_ids"].shape[1]:]
                for row, i in enumerate(idx):
                    out.prompt_ids[i] = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
                    out.response_ids[i] = _until_eos(new[row].tolist(), lm, tok)
                for i, text in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                    out.texts[i] = text.strip()
    finally:
        tok.padding_side, tok.truncation_side = saved_sides
        lm.train(was_training)
    return out


def _max_prompt_tokens(lm: Any, tok: Any, max_new_tokens: int, is_seq2seq: bool) -> int:
    """Longest prompt that still leaves room for the new tokens in the model's window."""
    limit = tok.model_max_length if tok.model_max_length < 1_000_000 else 1024
    positions = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", None)
    if positions and not is_seq2seq:
        limit = min(limit, positions - max_new_tokens)
    if limit <= 0:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for the prompt in a context of "
            f"{positions} positions; lower max_new_tokens"
        )
    return limit


def load_lm(model: Any, tokenizer: Any = None, device: str | None = None) -> tuple[Any, Any, bool]:
    """(lm, tokenizer, is_seq2seq) from a path/id, an HF model, a policy, or a run folder."""
    from transformers import AutoTokenizer

    if isinstance(model, (str, Path)):
        import torch

        lm = _load_from_path(model)
        lm.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    else:
        lm = _unwrap(model)
        if device is not None:
            lm.to(device)
    if tokenizer is None:
        tokenizer = _load_tokenizer(model, lm)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    is_seq2seq = bool(getattr(lm.config, "is_encoder_decoder", False))
    return lm, tokenizer, is_seq2seq
