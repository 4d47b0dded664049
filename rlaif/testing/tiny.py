"""Tiny models built offline: GPT-2 (causal), T5 (seq2seq), RoBERTa 2-label classifier.

Tokenizers are trained locally with `tokenizers`, models are random-initialised from small
configs, and everything is saved with `save_pretrained`, so tests and the demo load them
back through the very `from_pretrained` path used for hub ids. No network is touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

DEFAULT_CORPUS = [
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then knead.",
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Human: You are stupid. Assistant: I am sorry you feel that way. How can I help?",
    "Human: Tell me a joke. Assistant: Why did the chicken cross the road?",
    "I like you. You are terrible and I hate you. Thank you, that is kind.",
    "Summarize the following conversation. The user asked for help and got it.",
    "You idiot, shut up. That is a horrible, hateful thing to say.",
    "Please be polite and respectful. Have a wonderful day, friend.",
    "0123456789 .,!?;:'\"()-",
]

MODEL_MAX_LENGTH = 128


def _corpus(corpus: Iterable[str] | None) -> list[str]:
    texts = list(corpus) if corpus is not None else []
    return texts + DEFAULT_CORPUS * 4


def _bpe_tokenizer(texts: list[str], vocab_size: int, specials: list[str]):
    """Byte-level BPE as GPT-2 and RoBERTa use."""
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


def build_tiny_gpt2(out_dir: str | Path, corpus: Iterable[str] | None = None,
                    vocab_size: int = 512, n_embd: int = 32, n_layer: int = 2, n_head: int = 2,
                    seed: int = 0) -> Path:
    """Save a tiny GPT-2 (random weights) and its locally trained tokenizer to `out_dir`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = _bpe_tokenizer(_corpus(corpus), vocab_size, ["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="left",
    )
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=MODEL_MAX_LENGTH * 2, n_embd=n_embd,
        n_layer=n_layer, n_head=n_head, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_t5(out_dir: str | Path, corpus: Iterable[str] | None = None,
                  vocab_size: int = 384, d_model: int = 32, num_layers: int = 2,
                  num_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny T5 (random weights) and a locally trained Unigram tokenizer to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = Tokenizer(models.Unigram())
    raw.normalizer = normalizers.NFKC()
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(corpus), trainer=trainer)
    # T5 appends </s> to every encoded input.
    raw.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", raw.token_to_id("</s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=MODEL_MAX_LENGTH,
    )
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=d_model * 2,
        num_layers=num_layers, num_decoder_layers=num_layers, num_heads=num_heads,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, relative_attention_num_buckets=8,
    )
    torch.manual_seed(seed)
    T5ForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_roberta_classifier(out_dir: str | Path, corpus: Iterable[str] | None = None,
                                  vocab_size: int = 512, hidden_size: int = 32,
                                  num_layers: int = 2, num_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny 2-label RoBERTa classifier (`id2label {0: nothate, 1: hate}`) to `out_dir`."""
    import torch
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = _bpe_tokenizer(_corpus(corpus), vocab_size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    raw.post_processor = processors.RobertaProcessing(
        ("</s>", raw.token_to_id("</s>")), ("<s>", raw.token_to_id("<s>"))
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=MODEL_MAX_LENGTH,
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=hidden_size * 2,
        max_position_embeddings=MODEL_MAX_LENGTH + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        num_labels=2, id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1},
        # Larger init than the default 0.02 so different texts get visibly different logits.
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    RobertaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_models(root: str | Path, corpus: Iterable[str] | None = None) -> dict[str, Path]:
    """Build all three tiny models under `root`; returns {"gpt2", "t5", "roberta"} -> folder."""
    root = Path(root)
    texts = list(corpus) if corpus is not None else None
    return {
        "gpt2": build_tiny_gpt2(root / "tiny-gpt2", texts),
        "t5": build_tiny_t5(root / "tiny-t5", texts),
        "roberta": build_tiny_roberta_classifier(root / "tiny-roberta", texts),
    }
