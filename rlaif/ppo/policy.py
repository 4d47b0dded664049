"""The PPO policy: a causal or seq2seq LM with a scalar value head, optional LoRA, and its reference.

The reference (the KL anchor) is the same weights with the LoRA adapters switched off when
LoRA is on, so it costs no memory; without LoRA it is a frozen deep copy (`.ref_model`).
Hub ids and local folders go through `rlaif.models.load.load_base_model`, as evaluation's do;
the saved layout is `rlaif.models.policy_layout`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlaif.config import LoraSettings
from rlaif.io import atomic_write_json
from rlaif.models import prefix
from rlaif.models.policy_layout import ADAPTER_DIR, MODEL_DIR, POLICY_META, VALUE_HEAD_FILE
from rlaif.models.load import load_adapter, load_base_model, read_policy_meta
from rlaif.models.logprobs import (
    accepts_logits_to_keep,
    entropy_from_logits,
    logprobs_from_logits,
    response_forward,
)
from rlaif.ppo.capture import capture_head_inputs, capture_unsupported_reason, stack_states
from rlaif.ppo.head import frozen_head_logprobs
from rlaif.models.lora import wrap_lora
from rlaif.models.training import disable_dropout, enable_checkpointing, frozen_copy


@dataclass
class ResponseOutput:
    """Per-response-token outputs of `forward_response`, all (B, R)."""

    logprobs: torch.Tensor
    values: torch.Tensor | None
    entropy: torch.Tensor | None


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
        return None if t is None else torch.nn.functional.pad(t, (0, missing))  # pads dim 1 (R)

    return ResponseOutput(logprobs=pad(out.logprobs), values=pad(out.values), entropy=pad(out.entropy))


class PolicyWithValueHead(nn.Module):
    """LM policy + value head (on the last hidden states) + reference for the KL penalty.

    Built around `model` as given: without LoRA the reference is `ref_model`, frozen in place
    (requires_grad off, eval mode), or else a frozen copy of `model`. `from_pretrained` and
    `load` build both models themselves.
    """

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
        self._logits_to_keep = accepts_logits_to_keep(base)
        # Tokens every query of a batch starts with run once (rlaif.models.prefix); the
        # trainer sets this from `ppo.share_prefix`.
        self.share_prefix = True
        # Logits are plain lm_head(final hidden state): what capture.py and head.py rely on.
        self._plain_head = capture_unsupported_reason(self.config, is_seq2seq) is None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, lora: LoraSettings | None = None,
                        dtype: torch.dtype | None = None, revision: str | None = None,
                        gradient_checkpointing: bool = False) -> PolicyWithValueHead:
        """Load a hub id or local folder; causal vs seq2seq comes from `config.is_encoder_decoder`."""
        model = load_base_model(name_or_path, dtype=dtype, revision=revision)
        # PPO compares logprobs from rollout and update passes: dropout would make the ratio
        # differ from 1 on identical weights. LoRA dropout (added below) stays.
        disable_dropout(model)
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
                         with_entropy: bool = True, temperature: float = 1.0) -> ResponseOutput:
        """Logprobs, values and entropy of each response token given its (left-padded) query.

        Logits are divided by the sampling `temperature` (as TRL's PPO did), so logprobs are
        those of the distribution the responses were sampled from. `reference=True` uses the
        reference weights under no_grad and returns no values; `with_entropy=False` skips the
        entropy (a softmax over the vocabulary per token) where it is not needed.
        Columns that are padding in every row (a minibatch of short prompts cut from a batch
        padded to its longest one) are dropped before the forward pass and the outputs padded
        back with zeros to (B, R), so the cost follows the longest sample actually present.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to score responses, got {temperature}")
        response_len = response_ids.size(1)
        batch = trim_padding(query_ids, query_mask, response_ids, response_mask)
        if reference:
            with torch.no_grad(), self.reference() as ref:
                out = self._forward_lm(ref, *batch, with_values=False, with_entropy=with_entropy,
                                       temperature=temperature)
        else:
            out = self._forward_lm(self.model, *batch, with_values=with_values,
                                   with_entropy=with_entropy, temperature=temperature)
        return _pad_response_output(out, response_len)

    def _forward_lm(self, lm: nn.Module, query_ids: torch.Tensor, query_mask: torch.Tensor,
                    response_ids: torch.Tensor, response_mask: torch.Tensor, *, with_values: bool,
                    with_entropy: bool, temperature: float) -> ResponseOutput:
        # A frozen head under autograd: logprobs straight from the hidden states (head.py).
        fused = lm is self.model and not with_entropy and self._head_fusable()
        logits, hidden = response_forward(lm, query_ids, query_mask, response_ids, response_mask,
                                          hidden_states=with_values or fused, logits=not fused,
                                          share_prefix=self.share_prefix)
        if fused:
            head = self.base_model().get_output_embeddings()
            return ResponseOutput(
                logprobs=frozen_head_logprobs(hidden, head, response_ids, temperature),
                values=self._values(hidden) if with_values else None, entropy=None)
        return self._head_outputs(logits, hidden if with_values else None, response_ids,
                                  temperature=temperature, with_entropy=with_entropy)

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
                      response_ids: torch.Tensor, *, temperature: float,
                      with_entropy: bool = True) -> ResponseOutput:
        """Logits (B, R, V) and final hidden states (B, R, H) or None -> a `ResponseOutput`."""
        if temperature != 1.0:  # x / 1.0 == x: skip a (B, R, V) copy
            logits = logits / temperature
        return ResponseOutput(
            logprobs=logprobs_from_logits(logits, response_ids),
            values=self._values(hidden) if hidden is not None else None,
            entropy=entropy_from_logits(logits.detach()) if with_entropy else None,
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

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate_with_states(self, query_ids: torch.Tensor, query_mask: torch.Tensor, *,
                             capture: bool = True, **gen_kwargs: Any
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sample responses with the policy: (B, Q) -> response_ids (B, R), query / start token
        stripped; with `capture`, also the final hidden state that predicted each response token,
        (B, R, H), for `score_states` (see `rlaif.ppo.capture` for when that is exact), else None."""
        if gen_kwargs.get("pad_token_id") is None:
            pad = self.config.pad_token_id
            gen_kwargs["pad_token_id"] = pad if pad is not None else self.config.eos_token_id
        head = self.base_model().get_output_embeddings() if capture else None
        # The tokens every query starts with run once, before the capture (rlaif.models.prefix);
        # the ids keep their width, so the response still starts at column Q.
        ids, mask, cached = prefix.generation_inputs(
            self.model, query_ids, query_mask, enabled=self.share_prefix and gen_kwargs.get("use_cache", True))
        with capture_head_inputs(head) if capture else contextlib.nullcontext() as states:
            out = self.model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs, **cached)
        response_ids = out[:, 1:] if self.is_seq2seq else out[:, query_ids.size(1):]  # drop start / query
        if states is None:
            return response_ids, None
        return response_ids, stack_states(states, response_ids.size(1))

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
        atomic_write_json(directory / POLICY_META, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, base: str | None = None, *, dtype: torch.dtype | None = None,
             with_reference: bool = True) -> PolicyWithValueHead:
        """Restore a policy written by `save`; `base` overrides the recorded base model path.

        The base model (recorded or `base`) is what LoRA adapters attach to, and the
        reference of a full fine-tune (the trained weights are never the KL anchor).
        """
        directory = Path(directory)
        meta = read_policy_meta(directory)
        base_path = base or meta["base_model"]
        revision = meta.get("revision") if base is None else None
        lora = LoraSettings(**meta["lora"]) if meta.get("lora") else None
        ref_model = None
        if lora is not None:
            model = load_base_model(base_path, dtype=dtype, revision=revision)
            disable_dropout(model)  # before the adapter: LoRA's own dropout stays
            model = load_adapter(model, directory / ADAPTER_DIR, trainable=True)
        else:
            model = load_base_model(str(directory / MODEL_DIR), dtype=dtype)
            disable_dropout(model)
            if with_reference:
                ref_model = load_base_model(base_path, dtype=dtype, revision=revision)
                disable_dropout(ref_model)
        policy = cls(model, is_seq2seq=bool(meta["is_seq2seq"]), name_or_path=base_path, lora=lora,
                     revision=revision, ref_model=ref_model, with_reference=with_reference)
        policy.value_head.load_state_dict(torch.load(directory / VALUE_HEAD_FILE, map_location="cpu",
                                                     weights_only=True))
        return policy
