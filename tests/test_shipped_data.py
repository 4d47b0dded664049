"""The shipped data files: manifests (counts, sha256s), the even-rows rule, and no leaks between
splits or between the data sets (rlaif/data/LICENSES.md lists them)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from rlaif.data.hh import load_hh, sample_path
from rlaif.data.labelled import LABELLED_DIR, load_labelled
from rlaif.data.prompts import cluster_of_prompt, first_turn_prompt, normalise_text

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "rlaif" / "data" / "sample"
MIN_WORDS = 3  # a reply this long found inside a tweet is a copy, not a coincidence ("ok", "yes")


def _manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _check_files(manifest: dict, folder: Path) -> None:
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], (
            f"{folder / name}: sha256 differs from {manifest['script']}'s manifest; rebuild with it")
        assert data.count(b"\n") == entry["rows"], f"{folder / name}: row count != manifest"


def test_hh_harmless_matches_its_manifest_and_keeps_even_rows_only() -> None:
    manifest = _manifest(SAMPLE / "hh_harmless.json")
    assert manifest["license"] == "MIT" and "even rows only" in manifest["rule"]
    assert manifest["source"]["url"] == "https://github.com/anthropics/hh-rlhf"
    _check_files(manifest, SAMPLE)
    rows = []
    for split in ("train", "test"):
        data = load_hh("hh-harmless", split=split)
        entry = manifest["files"][sample_path(split, "hh-harmless").name]
        assert (len(data), data.skipped) == (entry["rows"], 0)
        assert len({e.meta["cluster"] for e in data}) == entry["clusters"]
        rows += [e.meta["row"] for e in data]
    assert all(r % 2 == 0 for r in rows), "an odd row of harmless-base/test is shipped"
    assert len(rows) == len(set(rows)) == manifest["source"]["rows"] // 2  # every even row, once


def test_hh_harmless_train_and_test_share_no_conversation() -> None:
    train, test = (load_hh("hh-harmless", split=s).examples for s in ("train", "test"))
    for data in (train, test):  # the cluster is the hash of the normalised first Human turn
        for e in data:
            key = cluster_of_prompt(e.prompt)
            assert e.meta["cluster"] == hashlib.sha256(key.encode()).hexdigest()[:12], e.meta
    assert not {e.meta["cluster"] for e in train} & {e.meta["cluster"] for e in test}
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    assert not ({first_turn_prompt(e.prompt) for e in train}
                & {first_turn_prompt(e.prompt) for e in test})
    assert not {cluster_of_prompt(e.prompt) for e in train} & {
        cluster_of_prompt(e.prompt) for e in test}


def test_davidson_matches_its_manifest_and_splits_are_disjoint() -> None:
    manifest = _manifest(LABELLED_DIR / "davidson.json")
    assert manifest["license"] == "MIT" and "ICWSM" in manifest["citation"]
    assert "slurs" in manifest["content_note"]
    _check_files(manifest, LABELLED_DIR)
    splits = {s: load_labelled("davidson", split=s) for s in ("train", "validation")}
    for split, rows in splits.items():
        entry = manifest["files"][f"davidson_{split}.jsonl"]
        assert len(rows) == entry["rows"] and sum(r.toxic for r in rows) == entry["toxic"]
        assert {c: sum(r.label == c for r in rows) for c in entry["classes"]} == entry["classes"]
        assert all(r.toxic == (r.label != "neither") for r in rows)
    train, val = splits["train"], splits["validation"]
    assert not {r.row for r in train} & {r.row for r in val}
    assert not {normalise_text(r.text) for r in train} & {normalise_text(r.text) for r in val}
    every = train + val
    assert sum(r.label == "hate" for r in every) == manifest["source"]["classes"]["hate"]
    assert abs(sum(r.toxic for r in every) / len(every) - 0.5) < 0.02  # about half toxic


def _replies() -> set[str]:
    """Every non-empty final reply (chosen and rejected) of the shipped HH-format files, normalised."""
    out = set()
    for source in ("hh-harmless", "redteam", "sample"):
        for split in ("train", "test"):
            for e in load_hh(source, split=split):
                out |= {normalise_text(e.chosen), normalise_text(e.rejected)}
    return out - {""}


@pytest.fixture(scope="module")
def tweets() -> list[str]:
    return [normalise_text(r.text) for s in ("train", "validation")
            for r in load_labelled("davidson", split=s)]


def test_no_davidson_tweet_is_or_contains_a_shipped_reply(tweets: list[str]) -> None:
    replies = _replies()
    assert not replies & set(tweets)
    long_replies = [r for r in replies if len(r.split()) >= MIN_WORDS]
    everything = "\n".join(tweets)  # normalised tweets hold no newline: one search per reply
    found = [r for r in long_replies if r in everything]
    assert not found, f"shipped replies found inside Davidson tweets: {found[:5]}"


def _redteam_content():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import redteam_content
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return redteam_content


def test_no_redteam_reply_sentence_or_fragment_occurs_in_davidson(tweets: list[str]) -> None:
    everything = "\n".join(tweets)
    sentences = {normalise_text(s) for split in ("train", "test")
                 for e in load_hh("redteam", split=split)
                 for s in re.split(r"(?<=[.!?])\s+", e.rejected)}
    content = _redteam_content()
    # the rude replies' template pieces, split at their {t} slot
    pieces = {normalise_text(p) for t in (*content.RUDE_OPENERS, *content.RUDE_MIDDLES,
                                          *content.RUDE_CLOSERS) for p in t.split("{t}")}
    checked = {s for s in sentences | pieces if len(s.split()) >= MIN_WORDS}
    assert len(checked) > 20
    found = sorted(s for s in checked if s in everything)
    assert not found, f"red-team reply text found inside Davidson tweets: {found[:5]}"


def test_redteam_train_and_test_share_no_request_template() -> None:
    content = _redteam_content()
    kinds = {k.name: k for k in content.KINDS}
    used: dict[str, set[tuple[str, str]]] = {}
    for split in ("train", "test"):
        used[split] = set()
        for e in load_hh("redteam", split=split):
            kind = kinds[e.meta["kind"]]
            request = cluster_of_prompt(e.prompt)
            templates = {t for t in kind.requests for target in kind.targets
                         if normalise_text(t.format(t=target)) == request}
            assert len(templates) == 1, f"redteam {split}: {request!r} -> {templates}"
            used[split] |= {(kind.name, *templates)}
    assert used["train"] and used["test"] and not used["train"] & used["test"]
    assert {k for k, _ in used["test"]} == set(kinds)  # every kind is measured on TEST
