"""Write the bundled Davidson et al. (2017) subset (rlaif/data/labelled/davidson_*.jsonl).

Source: https://github.com/t-davidson/hate-speech-and-offensive-language, data/labeled_data.csv
(MIT license): 24,783 tweets, each labelled by CrowdFlower annotators; `class` is the majority
label, 0 hate speech, 1 offensive language, 2 neither.

The shipped subset: ALL hate tweets, plus a seeded random sample of offensive tweets so that
toxic (hate + offensive) is half of TARGET_ROWS, plus a seeded random sample of 'neither'
tweets for the other half. Tweets keep their text exactly as in the CSV (HTML entities such as
`&amp;`, @mentions, URLs, line breaks; they contain slurs and profanity). Each row is

    {"text": tweet, "toxic": class != neither, "class": "hate"|"offensive"|"neither",
     "row": the CSV's own index column (its first, unnamed column)}

split 80/20 into davidson_train.jsonl / davidson_validation.jsonl by a sha256 of `row`, and
recorded in davidson.json (source, license, citation, sha256s, counts).

    python scripts/make_davidson_subset.py [PATH]
        PATH: labeled_data.csv, or a clone of the repository (working tree or bare); default:
        the local mirror /work/.mirror/t-davidson+hate-speech-and-offensive-language/repo
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from source_file import checked_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "rlaif" / "data" / "labelled"
SOURCE_URL = "https://github.com/t-davidson/hate-speech-and-offensive-language"
SOURCE_FILE = "data/labeled_data.csv"
SOURCE_SHA256 = "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281"
SOURCE_ROWS = 24783
DEFAULT_MIRROR = Path("/work/.mirror/t-davidson+hate-speech-and-offensive-language/repo")
COLUMNS = ["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"]
CLASSES = {"0": "hate", "1": "offensive", "2": "neither"}
TARGET_ROWS = 8000
SEED = 20170415
VALIDATION_PERCENT = 20
CITATION = ("Thomas Davidson, Dana Warmsley, Michael Macy and Ingmar Weber. 2017. Automated Hate "
            "Speech Detection and the Problem of Offensive Language. In Proceedings of the 11th "
            "International AAAI Conference on Web and Social Media (ICWSM '17), pp. 512-515.")


SOURCE_FIX = f"`git clone {SOURCE_URL}` and pass the clone or its {SOURCE_FILE}"


def parse(data: bytes) -> list[dict]:
    """The CSV's rows as {"text", "toxic", "class", "row"}; exits naming the row on a bad one."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    if reader.fieldnames != COLUMNS:
        sys.exit(f"{SOURCE_FILE}: columns {reader.fieldnames}, expected {COLUMNS}")
    rows = []
    for line, rec in enumerate(reader, 2):
        if rec["class"] not in CLASSES:
            sys.exit(f"{SOURCE_FILE} row {rec['']} (record {line}): field 'class' is "
                     f"{rec['class']!r}, expected 0, 1 or 2")
        label = CLASSES[rec["class"]]
        rows.append({"text": rec["tweet"], "toxic": label != "neither", "class": label,
                     "row": int(rec[""])})
    if len(rows) != SOURCE_ROWS:
        sys.exit(f"{SOURCE_FILE}: {len(rows)} rows, expected {SOURCE_ROWS}")
    return rows


def select(rows: list[dict], target: int = TARGET_ROWS, seed: int = SEED) -> list[dict]:
    """All hate rows, offensive rows to make half of `target` toxic, 'neither' for the rest."""
    by_class = {c: [r for r in rows if r["class"] == c] for c in CLASSES.values()}
    half = target // 2
    rng = random.Random(seed)
    offensive = rng.sample(by_class["offensive"], half - len(by_class["hate"]))
    neither = rng.sample(by_class["neither"], min(half, len(by_class["neither"])))
    return sorted(by_class["hate"] + offensive + neither, key=lambda r: r["row"])


def split_of(row: int) -> str:
    """"validation" for about VALIDATION_PERCENT% of row indices (by a sha256), else "train"."""
    bucket = int(hashlib.sha256(f"davidson-split/{row}".encode()).hexdigest()[:8], 16)
    return "validation" if bucket % 100 < VALIDATION_PERCENT else "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_MIRROR,
                        help=f"{SOURCE_FILE} or a clone of {SOURCE_URL}")
    args = parser.parse_args()
    start = time.perf_counter()
    data, digest = checked_source(args.path.expanduser(), SOURCE_FILE, SOURCE_URL, SOURCE_SHA256,
                                  SOURCE_FIX, "take the file from that repository again.")
    rows = parse(data)
    chosen = select(rows)
    splits = {"train": [r for r in chosen if split_of(r["row"]) == "train"],
              "validation": [r for r in chosen if split_of(r["row"]) == "validation"]}
    manifest: dict = {
        "name": "davidson",
        "source": {"url": SOURCE_URL, "file": SOURCE_FILE, "sha256": digest, "rows": len(rows),
                   "classes": dict(sorted(Counter(r["class"] for r in rows).items()))},
        "license": "MIT",
        "copyright": "Copyright (c) 2017 Tom Davidson",
        "citation": CITATION,
        "subset": f"all hate rows; seeded (random.Random({SEED})) samples of offensive and "
                  f"neither rows, {TARGET_ROWS} rows in all, half toxic (hate + offensive)",
        "split": f"by row: sha256('davidson-split/' + row) % 100 < {VALIDATION_PERCENT} is "
                 "validation",
        "fields": {"text": "the tweet exactly as in the CSV", "toxic": "class is not neither",
                   "class": "the CSV's majority label: hate, offensive or neither",
                   "row": "the CSV's index column (its first, unnamed column)"},
        "content_note": "tweets as posted: they contain slurs, profanity and hate speech; the "
                        "text is not cleaned (HTML entities, @mentions, URLs, line breaks kept)",
        "script": "scripts/make_davidson_subset.py",
        "files": {},
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for split, part in splits.items():
        path = OUT_DIR / f"davidson_{split}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
        path.write_text(text, encoding="utf-8")
        counts = dict(sorted(Counter(r["class"] for r in part).items()))
        manifest["files"][path.name] = {
            "split": split, "rows": len(part), "classes": counts,
            "toxic": sum(r["toxic"] for r in part),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
        print(f"{path}: {len(part)} rows {counts}")
    (OUT_DIR / "davidson.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
    print(f"{OUT_DIR / 'davidson.json'} written in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
