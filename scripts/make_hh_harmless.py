"""Write the bundled hh-harmless subset (rlaif/data/sample/hh_harmless_{train,test}.jsonl).

Source: Anthropic hh-rlhf, `harmless-base/test.jsonl.gz` (MIT license,
https://github.com/anthropics/hh-rlhf), 2,312 rows, sha256 checked below.

Only the EVEN-numbered rows (0-based row index 0, 2, 4, ...) are used: the odd rows are kept
for independent checks, so they are skipped on reading (not even JSON-decoded) and nothing
about them is written. Each kept row keeps its `chosen` and `rejected` transcripts as in the
original (real-data quirks such as empty turns included) and gains

    row      its original 0-based row index in test.jsonl.gz (always even)
    cluster  a short stable id of the conversation: rows whose first Human turn is the same
             after lowercasing and whitespace-normalising are one conversation

Rows are split into TRAIN / TEST by cluster (a sha256 of the cluster key, about 80/20), so no
conversation is in both. A manifest (hh_harmless.json) records the source, license, sha256s,
counts and the rule.

    python scripts/make_hh_harmless.py PATH
        PATH: the test.jsonl.gz file, or a clone of the hh-rlhf repository (a working tree with
        harmless-base/test.jsonl.gz, or a bare clone, read through `git show`)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from source_file import checked_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from rlaif.data.hh import parse_row  # noqa: E402
from rlaif.data.prompts import cluster_of_prompt  # noqa: E402

SOURCE_URL = "https://github.com/anthropics/hh-rlhf"
SOURCE_FILE = "harmless-base/test.jsonl.gz"
SOURCE_SHA256 = "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03"
SOURCE_ROWS = 2312
OUT_DIR = REPO / "rlaif" / "data" / "sample"
STEM = "hh_harmless"
TEST_PERCENT = 20
RULE = ("even rows only: only rows with an even 0-based index (0, 2, 4, ...) of "
        "harmless-base/test.jsonl.gz are used; odd rows are held out for independent checks "
        "and are neither read nor written")


def cluster_id(key: str) -> str:
    """A short stable id of a cluster key (the normalised first Human turn)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def split_of(key: str) -> str:
    """"test" for about TEST_PERCENT% of cluster keys (by a sha256 of the key), else "train"."""
    bucket = int(hashlib.sha256(f"hh-harmless-split/{key}".encode("utf-8")).hexdigest()[:8], 16)
    return "test" if bucket % 100 < TEST_PERCENT else "train"


SOURCE_FIX = (f"pass the downloaded file, e.g. `git clone {SOURCE_URL}` then "
              f"`python {Path(__file__).name} hh-rlhf/{SOURCE_FILE}`")


def even_rows(data: bytes) -> list[tuple[int, dict]]:
    """(original row index, row) of the even rows; odd rows are skipped before decoding."""
    lines = [line for line in gzip.decompress(data).split(b"\n") if line.strip()]
    if len(lines) != SOURCE_ROWS:
        sys.exit(f"{SOURCE_FILE}: {len(lines)} rows, expected {SOURCE_ROWS}")
    return [(i, json.loads(lines[i])) for i in range(0, len(lines), 2)]


def build(data: bytes) -> dict[str, list[dict]]:
    """The TRAIN and TEST rows (HH format plus `row` and `cluster`), in original row order."""
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for index, row in even_rows(data):
        example = parse_row(row, index, SOURCE_FILE)  # raises on a row the loader refuses
        key = cluster_of_prompt(example.prompt)
        out[split_of(key)].append({"chosen": row["chosen"], "rejected": row["rejected"],
                                   "row": index, "cluster": cluster_id(key)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help=f"{SOURCE_FILE} or a clone of {SOURCE_URL}")
    args = parser.parse_args()
    start = time.perf_counter()
    data, digest = checked_source(
        args.path.expanduser(), SOURCE_FILE, SOURCE_URL, SOURCE_SHA256, SOURCE_FIX,
        "download the file again from that repository (it is a Git LFS file: `git lfs pull` in "
        "a clone, or take it from the hub).")
    splits = build(data)
    manifest: dict = {
        "name": "hh-harmless",
        "source": {"url": SOURCE_URL, "file": SOURCE_FILE, "sha256": digest,
                   "rows": SOURCE_ROWS},
        "license": "MIT",
        "copyright": "Copyright (c) 2022 Anthropic",
        "citation": "Bai et al. 2022, Training a Helpful and Harmless Assistant with "
                    "Reinforcement Learning from Human Feedback, arXiv:2204.05862",
        "rule": RULE,
        "cluster": "first 12 hex digits of sha256 of the first Human turn, lowercased, "
                   "whitespace runs made one space",
        "split": f"by cluster: sha256('hh-harmless-split/' + key) % 100 < {TEST_PERCENT} is test",
        "content_note": "red-team dialogues: requests for harmful content, slurs and profanity",
        "script": "scripts/make_hh_harmless.py",
        "files": {},
    }
    for split, rows in splits.items():
        path = OUT_DIR / f"{STEM}_{split}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        path.write_text(text, encoding="utf-8")
        manifest["files"][path.name] = {
            "split": split, "rows": len(rows),
            "clusters": len({r["cluster"] for r in rows}),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
        print(f"{path}: {len(rows)} rows, {manifest['files'][path.name]['clusters']} clusters")
    (OUT_DIR / f"{STEM}.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
    print(f"{OUT_DIR / (STEM + '.json')} written in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
