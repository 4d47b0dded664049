"""The PPO policy: a causal or seq2seq LM with a scalar value head, optional LoRA, and its reference.

The reference (the KL anchor) is the same weights with the LoRA adapters switched off when
LoRA is on, so it costs no memory; without LoRA it is a frozen deep copy (`.ref_model`).
Hub ids and local folders go through the same `from_pretrained` path.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlaif.ppo.capture import capture_head_inputs, capture_unsupported_reason, stack_states
from rlaif.ppo.core import entropy_from_logits, first_true_indices, logprobs_from_logits
from rlaif.ppo.head import contiguous_head_input, frozen_head_logprobs
from rlaif.ppo.lora import LoraSettings, wrap_lora
from rlaif.ppo.modeling import (
    disable_dropout as dropout_off,
    enable_checkpointing,
    frozen_copy,
    load_base_model,
)

POLICY_META = "policy.json"
VALUE_HEAD_FILE = "value_head.pt"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"

@dataclass
class ResponseOutput:
    """Per-response-token outputs of `forward_response`, all (B, R) except logits (B, R, V)."""

    logprobs: torch.Tensor
    values: torch.Tensor | None
    entropy: torch.Tensor | None
    logits: torch.Tensor | None = None


def trim_padding(query_ids: torch.Tensor, query_mask: torch.Tensor, response_ids: torch.Tensor,
                 response_mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop query columns that are padding in every row and response columns after the last
    real token of any row; the tokens left, their order and their positions are unchanged."""
    keep_query = query_mask.bool().any(dim=0)  # (Q,)
    if not bool(keep_query.all()):
        query_ids, query_mask = query_ids[:, keep_query], query_mask[:, keep_query]
    real = response_mask.bool().any(dim=0)  # (R,): responses are padded on the right
    response_len = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
    if response_len < response_ids.size(1):
        response_ids, response_mask = response_ids[:, :response_len], response_mask[:, :response_len]
    return query_ids, query_mask, response_ids, response_mask


def _pad_response_output(out: ResponseOutput, response_len: int) -> ResponseOutput:
    """Zero-pad a `ResponseOutput` computed on trimmed responses back to `response_len` tokens."""
    missing = response_len - out.logprobs.size(1)
    if missing == 0:
        return out

    def pad(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        spec = (0, 0, 0, missing) if t.dim() == 3 else (0, missing)  # pads dim 1 (R)
        return torch.nn.functional.pad(t, spec)

    return ResponseOutput(logprobs=pad(out.logprobs), values=pad(out.values),
                          entropy=pad(out.entropy), logits=pad(out.logits))


def truncate_response(response_ids: torch.Tensor, eos_token_id: int | Sequence[int],
                      pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad everything after the first EOS: (B, R) -> (response_ids, response_mask); EOS stays valid."""
    eos_ids = torch.as_tensor(eos_token_id, device=response_ids.device).flatten()
    is_eos = torch.isin(response_ids, eos_ids)  # (B, R)
    first_eos = first_true_indices(is_eos)  # (B,), R when no EOS
    positions = torch.arange(response_ids.size(1), device=response_ids.device)  # (R,)
    response_mask = (positions[None, :] <= first_eos[:, None]).long()  # (B, R)
    response_ids = torch.where(response_mask.bool(), response_ids, pad_token_id)
    return response_ids, response_mask


class PolicyWithValueHead(nn.Module):
    """LM policy + value head (on the last hidden states) + reference for the KL penalty."""

    def __init__(self, model: nn.Module, *, is_seq2seq: bool, name_or_path: str,
                 lora: LoraSettings | None = None, revision: str | None = None,
                 ref_model: nn.Module | None = None, with_reference: bool = True) -> None:
        super().__init__()
        self.model = model
        self.is_seq2seq = is_seq2seq
        self.name_or_path = name_or_path
        self.revision = revision
        self.lora = lora
        base = self.base_model()
        self.config = base.config
        hidden_size = self.config.get_text_config().hidden_size
        # Float32 head whatever the LM dtype: values are regressed with MSE and bf16 is coarse.
        self.value_head = nn.Linear(hidden_size, 1)
        # Small init (CleanRL's std = 1/sqrt(hidden + 1)) so early values stay near 0.
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.value_head.bias)
        self.ref_model: nn.Module | None = None
        if not self.uses_lora and with_reference:
            # Registered as a submodule so `.to(device)` moves it; frozen, so never trained.
            self.ref_model = ref_model if ref_model is not None else frozen_copy(model)
            self.ref_model.requires_grad_(False)
            self.ref_model.eval()
        # Causal LMs in transformers can skip the vocabulary projection for query positions.
        self._logits_to_keep = "logits_to_keep" in inspect.signature(type(base).forward).parameters
        # Logits are plain lm_head(final hidden state): what capture.py and head.py rely on.
        self._plain_head = capture_unsupported_reason(self.config, is_seq2seq) is None
        for lm in (base, self.ref_model):
            if lm is not None:
                contiguous_head_input(lm)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, lora: LoraSettings | None = None,
                        dtype: torch.dtype | None = None, revision: str | None = None,
                        gradient_checkpointing: bool = False,
                        disable_dropout: bool = True) -> PolicyWithValueHead:
        """Load a hub id or local folder; causal vs seq2seq comes from `config.is_encoder_decoder`."""
        model = load_base_model(name_or_path, dtype=dtype, revision=revision)
        if disable_dropout:
            # PPO compares logprobs from rollout and update passes: dropout would make the
            # ratio differ from 1 on identical weights. LoRA dropout (added below) stays.
            dropout_off(model)
        ref_model = None if lora is not None else frozen_copy(model)
        if gradient_checkpointing:
            enable_checkpointing(model)
        if lora is not None:
            model = wrap_lora(model, lora)
        return cls(model, is_seq2seq=bool(model.config.is_encoder_decoder), name_or_path=name_or_path,
                   lora=lora, revision=revision, ref_model=ref_model)

    @property
    def uses_lora(self) -> bool:
        """True when `.model` is a peft model carrying LoRA adapters."""
        return self.lora is not None

    def base_model(self) -> nn.Module:
        """The underlying transformers model (inside the peft wrapper when LoRA is on)."""
        if self.lora is not None:
            return self.model.get_base_model()
        return self.model

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser should update (LoRA + value head, or LM + value head)."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> PolicyWithValueHead:
        """Set train/eval mode; the frozen reference copy always stays in eval mode."""
        super().train(mode)
        if self.ref_model is not None:
            self.ref_model.eval()
        return self

    # ------------------------------------------------------------------ reference

    @contextlib.contextmanager
    def reference(self) -> Iterator[nn.Module]:
        """Context yielding the reference LM: adapters disabled (LoRA) or the frozen copy."""
        if self.uses_lora:
            with self.model.disable_adapter():
                yield self.model
        else:
            if self.ref_model is None:
                raise RuntimeError(
                    f"policy {self.name_or_path!r} was loaded with with_reference=False; "
                    "load it with with_reference=True to compute reference logprobs"
                )
            yield self.ref_model

    # ------------------------------------------------------------------ forward

    def forward(self, *args: Any, **kwargs: Any) -> ResponseOutput:
        """Alias of `forward_response`, so DDP-wrapped policies sync gradients through `__call__`."""
        return self.forward_response(*args, **kwargs)

    def forward_response(self, query_ids: torch.Tensor, query_mask: torch.Tensor,
                         response_ids: torch.Tensor, response_mask: torch.Tensor, *,
                         reference: bool = False, with_values: bool = True,
                         with_entropy: bool = True, temperature: float = 1.0,
                         return_logits: bool = False) -> ResponseOutput:
        """Logprobs, values and entropy of each response token given its (left-padded) query.

        Logits are divided by the sampling `temperature` (as TRL's PPO did), so logprobs are
        those of the distribution the responses were sampled from. `reference=True` uses the
        reference weights under no_grad and returns no values; `with_entropy=False` skips the
        entropy (a softmax over the vocabulary per token) where it is not needed.
        Columns that are padding in every row (a minibatch of short prompts cut from a batch
        padded to its longest one) are dropped before the forward pass and the outputs padded
        back with zeros to (B, R), so the cost follows the longest sample actually present.
        """
        response_len = response_ids.size(1)
        query_ids, query_mask, response_ids, response_mask = trim_padding(
            query_ids, query_mask, response_ids, response_mask)
        if reference:
            with torch.no_grad(), self.reference() as ref:
                out = self._forward_lm(ref, query_ids, query_mask, response_ids, response_mask,
                                       with_values=False, with_entropy=with_entropy,
                                       temperature=temperature, return_logits=return_logits)
        else:
            out = self._forward_lm(self.model, query_ids, query_mask, response_ids, response_mask,
                                   with_values=with_values, with_entropy=with_entropy,
                                   temperature=temperature, return_logits=return_logits)
        return _pad_response_output(out, response_len)

    def _forward_lm(self, lm: nn.Module, query_ids: torch.Tensor, query_mask: torch.Tensor,
                    response_ids: torch.Tensor, response_mask: torch.Tensor, *, with_values: bool,
                    with_entropy: bool, temperature: float, return_logits: bool) -> ResponseOutput:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to score responses, got {temperature}")
        q_len, r_len = query_ids.size(1), response_ids.size(1)
        if self.is_seq2seq:
            batch = response_ids.size(0)
            start = torch.full((batch, 1), self.decoder_start_token_id, dtype=response_ids.dtype,
                               device=response_ids.device)
            decoder_input_ids = torch.cat([start, response_ids[:, :-1]], dim=1)  # (B, R)
            decoder_mask = torch.cat([torch.ones_like(start), response_mask[:, :-1]], dim=1)  # (B, R)
            out = lm(input_ids=query_ids, attention_mask=query_mask,
                     decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_mask,
                     output_hidden_states=with_values, use_cache=False)
            logits = out.logits  # (B, R, V)
            hidden = out.decoder_hidden_states[-1] if with_values else None  # (B, R, H)
        else:
            input_ids = torch.cat([query_ids, response_ids], dim=1)  # (B, Q + R)
            attention_mask = torch.cat([query_mask, response_mask], dim=1)  # (B, Q + R)
            # Left padding: positions count only real tokens, as they did during generation.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            # A frozen head under autograd: logprobs straight from the hidden states (head.py).
            fused = lm is self.model and not (with_entropy or return_logits) and self._head_fusable()
            extra = {"logits_to_keep": 1 if fused else r_len + 1} if self._logits_to_keep else {}
            out = lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                     output_hidden_states=with_values or fused, use_cache=False, **extra)
            # The token at position Q + t is predicted from position Q - 1 + t.
            hidden = out.hidden_states[-1][:, q_len - 1:-1] if with_values or fused else None
            if fused:
                head = self.base_model().get_output_embeddings()
                return ResponseOutput(
                    logprobs=frozen_head_logprobs(hidden, head, response_ids, temperature),
                    values=self._values(hidden) if with_values else None, entropy=None)
            logits = out.logits[:, -(r_len + 1):-1]  # (B, R, V)
        return self._head_outputs(logits, hidden, response_ids, temperature=temperature,
                                  with_entropy=with_entropy, return_logits=return_logits)

    def _head_fusable(self) -> bool:
        """Whether `frozen_head_logprobs` can stand in for lm_head + log-softmax here: under
        autograd, a frozen `nn.Linear` head whose output is the logits (see capture.py)."""
        if not (torch.is_grad_enabled() and self._logits_to_keep and self._plain_head):
            return False
        head = self.base_model().get_output_embeddings()
        return type(head) is nn.Linear and not any(p.requires_grad for p in head.parameters())

    def _values(self, hidden: torch.Tensor) -> torch.Tensor:
        """Value-head output (B, R) for final hidden states (B, R, H), in the head's dtype."""
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)

    def _head_outputs(self, logits: torch.Tensor, hidden: torch.Tensor | None,
                      response_ids: torch.Tensor, *, temperature: float, with_entropy: bool = True,
                      return_logits: bool = False) -> ResponseOutput:
        """Logits (B, R, V) and final hidden states (B, R, H) or None -> a `ResponseOutput`."""
        if temperature != 1.0:  # x / 1.0 == x: skip a (B, R, V) copy
            logits = logits / temperature
        return ResponseOutput(
            logprobs=logprobs_from_logits(logits, response_ids),
            values=self._values(hidden) if hidden is not None else None,
            entropy=entropy_from_logits(logits.detach()) if with_entropy else None,
            logits=logits if return_logits else None,
        )

    def score_states(self, states: torch.Tensor, response_ids: torch.Tensor, *,
                     temperature: float = 1.0) -> ResponseOutput:
        """Logprobs, values and entropy of `response_ids` from the final hidden states that
        predicted them (B, R, H), as `generate_with_states` captures them: one pass of the
        output embeddings and the value head instead of a forward through the whole model."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to score responses, got {temperature}")
        logits = self.base_model().get_output_embeddings()(states)  # (B, R, V)
        return self._head_outputs(logits, states, response_ids, temperature=temperature)

    @property
    def decoder_start_token_id(self) -> int:
        """The token a seq2seq decoder starts from (`config.decoder_start_token_id`)."""
        start = self.config.decoder_start_token_id
        if start is None:
            raise ValueError(f"seq2seq model {self.name_or_path!r} has no decoder_start_token_id in its config")
        return int(start)

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(self, query_ids: torch.Tensor, query_mask: torch.Tensor, **gen_kwargs: Any) -> torch.Tensor:
        """Sample responses with the policy: (B, Q) -> response_ids (B, R), query/start token stripped."""
        return self.generate_with_states(query_ids, query_mask, capture=False, **gen_kwargs)[0]

    @torch.no_grad()
    def generate_with_states(self, query_ids: torch.Tensor, query_mask: torch.Tensor, *,
                             capture: bool = True, **gen_kwargs: Any
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`generate`, plus (with `capture`) the final hidden state that predicted each response
        token, (B, R, H), for `score_states` (see `rlaif.ppo.capture` for when that is exact)."""
        if gen_kwargs.get("pad_token_id") is None:
            pad = self.config.pad_token_id
            gen_kwargs["pad_token_id"] = pad if pad is not None else self.config.eos_token_id
        head = self.base_model().get_output_embeddings() if capture else None
        with capture_head_inputs(head) if capture else contextlib.nullcontext() as states:
            out = self.model.generate(input_ids=query_ids, attention_mask=query_mask, **gen_kwargs)
        response_ids = out[:, 1:] if self.is_seq2seq else out[:, query_ids.size(1):]  # drop start / query
        if states is None:
            return response_ids, None
        return response_ids, stack_states(states, response_ids.size(1))

    truncate_response = staticmethod(truncate_response)

    # ------------------------------------------------------------------ save / load

    def save(self, directory: str | Path) -> Path:
        """Write the adapter (LoRA) or full model, `value_head.pt` and `policy.json` into `directory`.

        Files are written in place; callers wanting atomic checkpoints write to a temporary
        folder and rename it.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory / (ADAPTER_DIR if self.uses_lora else MODEL_DIR))
        torch.save(self.value_head.state_dict(), directory / VALUE_HEAD_FILE)
        meta = {
            "format": 1,
            "is_seq2seq": self.is_seq2seq,
            "base_model": self.name_or_path,
            "revision": self.revision,
            "lora": self.lora.model_dump() if self.lora is not None else None,
        }
        (directory / POLICY_META).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, base: str | None = None, *, dtype: torch.dtype | None = None,
             with_reference: bool = True) -> PolicyWithValueHead:
        """Restore a policy written by `save`; `base` overrides the recorded base model path.

        The base model (recorded or `base`) is what LoRA adapters attach to, and the
        reference of a full fine-tune (the trained weights are never the KL anchor).
        """
        directory = Path(directory)
        meta_path = directory / POLICY_META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: {directory} is not a policy saved by PolicyWithValueHead.save")
        meta = json.loads(meta_path.read_text())
        base_path = base or meta["base_model"]
        revision = meta.get("revision") if base is None else None
        lora = LoraSettings(**meta["lora"]) if meta.get("lora") else None
        if lora is not None:
            from peft import PeftModel

            model = load_base_model(base_path, dtype=dtype, revision=revision)
            dropout_off(model)
            model = PeftModel.from_pretrained(model, str(directory / ADAPTER_DIR), is_trainable=True)
            ref_model = None
        else:
            model = load_base_model(str(directory / MODEL_DIR), dtype=dtype)
            dropout_off(model)
            ref_model = None
            if with_reference:
                ref_model = load_base_model(base_path, dtype=dtype, revision=revision)
                dropout_off(ref_model)
        policy = cls(model, is_seq2seq=bool(meta["is_seq2seq"]), name_or_path=base_path, lora=lora,
                     revision=revision, ref_model=ref_model, with_reference=with_reference)
        policy.value_head.load_state_dict(torch.load(directory / VALUE_HEAD_FILE, map_location="cpu",
                                                     weights_only=True))
        return policy
