"""Small models built from scratch, offline: locally trained tokenizers, random-init weights.

- `train_bpe_tokenizer`: a byte-level BPE tokenizer (as GPT-2 and RoBERTa use) trained on texts.
- `build_gpt2`, `build_t5`, `build_roberta_classifier`, `build_llama`: a tokenizer trained on the
  given texts and a model of the given shape, its weights drawn after
  `torch.manual_seed(settings.seed)` (the Llama one with a ChatML chat template, like SmolLM2).
- `save_model`: `save_pretrained` of both, so they load back through the very
  `from_pretrained` path used for hub ids; `write_llama_gguf`: a Llama model and its tokenizer
  as one llama.cpp GGUF file (F32 tensors), as GGUF releases of real models are laid out.

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
CHATML_SPECIALS = [EOS, "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
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
class LlamaSettings:
    """Shape of a Llama causal LM (tied embeddings, grouped-query attention) and its BPE tokenizer."""

    vocab_size: int
    context_length: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
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


def build_llama(texts: list[str], settings: LlamaSettings) -> tuple[Any, PreTrainedTokenizerFast]:
    """(random-init LlamaForCausalLM, byte-level BPE tokenizer with a ChatML template; EOS = PAD = <|im_end|>)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = train_bpe_tokenizer(texts, settings.vocab_size, CHATML_SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token=EOS,
        pad_token="<|im_end|>", model_max_length=settings.context_length,
        chat_template=CHATML_TEMPLATE,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size, num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads, num_key_value_heads=settings.num_kv_heads,
        max_position_embeddings=settings.context_length, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config), tokenizer


# HF Llama parameter names -> llama.cpp GGUF tensor names ({i}: the layer).
GGUF_LLAMA_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _rope_interleave(weight: Any, n_head: int) -> Any:
    """llama.cpp's row order for a q/k projection: each head's two rotary halves interleaved."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_llama_gguf(path: str | Path, model: Any, tokenizer: Any) -> Path:
    """Write a Llama model and its byte-level BPE tokenizer as one GGUF file (F32 tensors, llama
    architecture metadata, the tokenizer's tokens, merges and chat template); returns the path."""
    import json

    import gguf

    cfg = model.config
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    special = set(tokenizer.all_special_tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")  # byte-level BPE
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])  # 3 = control, 1 = normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp writes no output matrix for tied embeddings
        array = tensor.detach().float().numpy()
        if ".layers." in name:
            layer, _, rest = name.removeprefix("model.layers.").partition(".")
            gguf_name = f"blk.{layer}.{GGUF_LLAMA_NAMES[rest]}"
            if rest.startswith(("self_attn.q_proj", "self_attn.k_proj")):
                heads = cfg.num_attention_heads if "q_proj" in rest else cfg.num_key_value_heads
                array = _rope_interleave(array, heads)
        else:
            gguf_name = GGUF_LLAMA_NAMES[name]
        writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def save_model(out_dir: str | Path, model: Any, tokenizer: Any) -> Path:
    """`save_pretrained` the model, then its tokenizer, into `out_dir` (created); returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
