"""Held-out rows: the ODD rows of Anthropic hh-rlhf `harmless-base/test` are kept for independent checks.

Only the even rows (0-based index 0, 2, 4, ...) of that file may be used here (the bundled
"hh-harmless" source is built from them). `load_hh` drops the odd rows while reading whenever it
reads that split: a local file `.../harmless-base/test.jsonl(.gz)` (any supported suffix), a local
folder laid out like the hub (its `harmless-base/test.*` file), or the hub id with
`data_dir="harmless-base"` and `split="test"`, or a copy of the released file under another
name (recognised by size and sha256, compressed or not). Kept rows keep their original index in
`meta["row"]`; a one-time log line says odd rows are held out.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

HELD_OUT_DIR = "harmless-base"
HELD_OUT_SPLIT = "test"
HUB_ID = "anthropic/hh-rlhf"
# The released file (.jsonl.gz) and its decompressed .jsonl: size in bytes -> sha256.
RELEASED_COPIES = {
    742801: "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03",
    3280164: "14d765196c9f18d84f9bb3a78bac608c8f2915110ebcbd74ec95db7b7198b008",
}
_logged: set[str] = set()


def keep_row(index: int) -> bool:
    """True for the rows that may be used: the even 0-based row indices."""
    return index % 2 == 0


def is_held_out_file(path: Path) -> bool:
    """Whether a local file is hh-rlhf's harmless-base test split (`.../harmless-base/test.*`,
    or a renamed copy of the released file)."""
    if path.parent.name == HELD_OUT_DIR and path.name.split(".")[0] == HELD_OUT_SPLIT:
        return True
    size = path.stat().st_size
    if size not in RELEASED_COPIES:  # cheap: only a file of the right size is hashed
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == RELEASED_COPIES[size]


def is_held_out_hub(source: str, data_dir: str | None, split: str) -> bool:
    """Whether `datasets.load_dataset(source, data_dir, split)` reads harmless-base/test.

    Raises ValueError for a split that would shift or mix its row indices (a slice such as
    "test[100:]", or the hub id's combined test split without data_dir), naming the fix.
    """
    subset = (data_dir or "").strip().strip("/").removeprefix("./")
    is_hub = source.strip().strip("/").lower() == HUB_ID
    test_split = split.strip().split("[")[0] == HELD_OUT_SPLIT
    if is_hub and not subset and test_split:
        raise ValueError(
            f"{source} split {split!r} without data_dir combines every subset's test file, "
            f"{HELD_OUT_DIR}/test among them, whose odd rows are held out for independent checks "
            "and cannot be told apart there; pass data_dir (e.g. harmless-base or helpful-base) "
            "to load one subset")
    if subset != HELD_OUT_DIR or not test_split:
        return False
    if split.strip() != HELD_OUT_SPLIT:
        raise ValueError(
            f"{source}/{data_dir} split {split!r}: a slice of {HELD_OUT_DIR}/test would shift "
            "its row indices, and its odd rows are held out; pass split='test' and use limit")
    return True


def note_held_out(name: str) -> None:
    """Log once per source name that its odd rows are held out."""
    if name not in _logged:
        _logged.add(name)
        logger.warning("%s: hh-rlhf %s/%s -- only its even rows are used; odd rows are held "
                       "out for independent checks and are not read", name, HELD_OUT_DIR,
                       HELD_OUT_SPLIT)
