"""Small models built from scratch, offline: locally trained tokenizers, random-init weights.

- `train_bpe_tokenizer`: a byte-level BPE tokenizer (as GPT-2 and RoBERTa use) trained on texts.
- `build_gpt2`, `build_t5`, `build_roberta_classifier`: a tokenizer trained on the given texts
  and a model of the given shape, its weights drawn after `torch.manual_seed(settings.seed)`.
- `save_model`: `save_pretrained` of both, so they load back through the very
  `from_pretrained` path used for hub ids.

No training loops live here (the demo trains its models in `rlaif.demo.training`), and no
network is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]
TOXICITY_LABELS = {0: "nothate", 1: "hate"}


@dataclass(frozen=True)
class GPT2Settings:
    """Shape of a GPT-2 causal LM and its BPE tokenizer (EOS doubles as BOS, UNK and PAD)."""

    vocab_size: int
    model_max_length: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    seed: int = 0


@dataclass(frozen=True)
class T5Settings:
    """Shape of a T5 seq2seq model and its Unigram tokenizer."""

    vocab_size: int
    model_max_length: int
    d_model: int
    num_layers: int
    num_heads: int
    seed: int = 0


@dataclass(frozen=True)
class RobertaSettings:
    """Shape of a 2-label RoBERTa classifier (nothate/hate); the defaults are roberta-base's."""

    vocab_size: int
    model_max_length: int
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    seed: int = 0


def train_bpe_tokenizer(texts: list[str], vocab_size: int, specials: list[str]) -> Tokenizer:
    """A byte-level BPE tokenizer (as GPT-2 and RoBERTa use) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_gpt2(texts: list[str], settings: GPT2Settings) -> tuple[Any, PreTrainedTokenizerFast]:
    """(random-init GPT2LMHeadModel, left-padding tokenizer trained on `texts`)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    raw = train_bpe_tokenizer(texts, settings.vocab_size, [EOS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
        model_max_length=settings.model_max_length, padding_side="left",
    )
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=settings.n_positions, n_embd=settings.n_embd,
        n_layer=settings.n_layer, n_head=settings.n_head, bos_token_id=eos, eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(settings.seed)
    return GPT2LMHeadModel(config), tokenizer


def build_t5(texts: list[str], settings: T5Settings) -> tuple[Any, PreTrainedTokenizerFast]:
    """(random-init T5ForConditionalGeneration, Unigram tokenizer trained on `texts`)."""
    import torch
    from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                            trainers)
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    raw = Tokenizer(models.Unigram())
    raw.normalizer = normalizers.NFKC()
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=settings.vocab_size, special_tokens=T5_SPECIALS, unk_token="<unk>",
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    # T5 appends </s> to every encoded input.
    raw.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", raw.token_to_id("</s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=settings.model_max_length,
    )
    d_model, num_heads = settings.d_model, settings.num_heads
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=d_model * 2,
        num_layers=settings.num_layers, num_decoder_layers=settings.num_layers,
        num_heads=num_heads, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        relative_attention_num_buckets=8,
    )
    torch.manual_seed(settings.seed)
    return T5ForConditionalGeneration(config), tokenizer


def build_roberta_classifier(texts: list[str],
                             settings: RobertaSettings) -> tuple[Any, PreTrainedTokenizerFast]:
    """(random-init 2-label RobertaForSequenceClassification, BPE tokenizer trained on `texts`)."""
    import torch
    from tokenizers import processors
    from transformers import (PreTrainedTokenizerFast, RobertaConfig,
                              RobertaForSequenceClassification)

    raw = train_bpe_tokenizer(texts, settings.vocab_size, ROBERTA_SPECIALS)
    raw.post_processor = processors.RobertaProcessing(
        ("</s>", raw.token_to_id("</s>")), ("<s>", raw.token_to_id("<s>"))
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=settings.model_max_length,
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=settings.max_position_embeddings,
        initializer_range=settings.initializer_range, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, num_labels=2,
        id2label=dict(TOXICITY_LABELS), label2id={v: k for k, v in TOXICITY_LABELS.items()},
    )
    torch.manual_seed(settings.seed)
    return RobertaForSequenceClassification(config), tokenizer


def save_model(out_dir: str | Path, model: Any, tokenizer: Any) -> Path:
    """`save_pretrained` the model, then its tokenizer, into `out_dir` (created); returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
