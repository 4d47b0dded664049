"""The held-out half of hh-rlhf's harmless-base/test (rlaif.data.heldout): its odd rows are
dropped on reading (local files, a renamed copy, the hub split), never decoded."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
from test_hh import GOOD

from rlaif.data.hh import load_hh
from rlaif.data.rows import DataFileError

# The odd rows of hh-rlhf harmless-base/test are held out (rlaif.data.heldout). In these fake
# files every odd row is not even JSON: reading one would raise, so passing shows it is skipped.
ODD = "not json: an odd row must never be decoded"


def _held_out_file(path: Path, n: int = 5, gz: bool = True) -> Path:
    lines = [json.dumps({**GOOD, "i": i}) if i % 2 == 0 else ODD for i in range(n)]
    text = "".join(line + "\n" for line in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def test_odd_rows_of_harmless_base_test_are_never_read(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "hh-rlhf"
    gz = _held_out_file(root / "harmless-base" / "test.jsonl.gz")
    plain = _held_out_file(tmp_path / "copy" / "harmless-base" / "test.jsonl", gz=False)
    with caplog.at_level(logging.WARNING, logger="rlaif.data.heldout"):
        for data in (load_hh(str(gz)), load_hh(str(plain)), load_hh(str(gz), limit=2),
                     load_hh(str(root), data_dir="harmless-base", split="test"),
                     load_hh(str(root), split="test")):  # no data_dir: every subset's test file
            rows = [e.meta["row"] for e in data]
            assert rows == [0, 2, 4][:len(rows)] and len(rows) >= 2
            assert [e.meta["i"] for e in data] == rows  # meta["row"]: the original index
        load_hh(str(gz))
    held = [r for r in caplog.records if "odd rows are held out" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in held] == [str(gz), str(plain)]  # once each
    # the same name elsewhere, or another split, is read whole (odd rows there are data)
    train = _held_out_file(root / "harmless-base" / "train.jsonl.gz")
    with pytest.raises(DataFileError, match="row 1 .*not valid JSON"):
        load_hh(str(train))


def test_odd_rows_are_dropped_from_the_hub_split(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{**GOOD, "i": i} for i in range(5)]
    calls = []

    def fake_load_dataset(source: str, data_dir: str | None, split: str) -> list[dict]:
        calls.append((source, data_dir, split))
        return rows

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_hh("Anthropic/hh-rlhf", data_dir="harmless-base", split="test")
    assert [(e.meta["row"], e.meta["i"]) for e in data] == [(0, 0), (2, 2), (4, 4)]
    assert len(load_hh("Anthropic/hh-rlhf", data_dir="harmless-base", split="train")) == 5
    assert len(load_hh("Anthropic/hh-rlhf", data_dir="helpful-base", split="test")) == 5
    with pytest.raises(ValueError, match=r"split 'test\[100:\]': a slice of harmless-base/test "
                       r"would shift its row indices.*pass split='test' and use limit"):
        load_hh("Anthropic/hh-rlhf", data_dir="harmless-base", split="test[100:]")
    with pytest.raises(ValueError, match=r"without data_dir combines every subset's test file.*"
                       r"pass data_dir"):
        load_hh("Anthropic/hh-rlhf", split="test")
    assert len(calls) == 3  # the refused splits were never loaded


def test_a_renamed_copy_of_the_released_file_is_recognised(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from rlaif.data import heldout

    path = _held_out_file(tmp_path / "hh_harmless_test.jsonl.gz")
    data = path.read_bytes()
    monkeypatch.setattr(heldout, "RELEASED_COPIES", {len(data): hashlib.sha256(data).hexdigest()})
    assert [e.meta["row"] for e in load_hh(str(path))] == [0, 2, 4]
    monkeypatch.setattr(heldout, "RELEASED_COPIES", {len(data): "0" * 64})
    with pytest.raises(DataFileError, match="row 1"):
        load_hh(str(path))
