"""`rlaif score JUDGE --data FILE`: score a JSONL file with any judge and summarise.

Rows are either {"prompt", "response"} (scored as is) or HH rows {"chosen", "rejected"}
(full transcripts: both are split into prompt and final reply and scored). The output
JSONL repeats every input field and adds `score`, `error`, `rationale` (HH rows:
`chosen_score`, `rejected_score`, `chosen_error`, ... ). It is written atomically.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HELP = "score a JSONL of {prompt, response} or HH {chosen, rejected} rows with a judge"
CHUNK = 256  # samples per judge call: big enough for length-sorted batches, small for progress
HH_SIDES = ("chosen", "rejected")
SAMPLE_REFS = {"sample": "train", "sample:train": "train", "sample:test": "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `rlaif score`."""
    parser.add_argument("judge", metavar="JUDGE",
                        help="built-in judge name (see `rlaif judges`) or a judge spec YAML path")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="JSONL file of {prompt, response} or HH {chosen, rejected} rows "
                        "('sample' or 'sample:test' = the bundled HH sample)")
    parser.add_argument("--out", metavar="FILE",
                        help="output JSONL (default: <data stem>.scores.jsonl in the current "
                        "directory, so the input's folder is never written to)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N rows")
    parser.add_argument("--cache", metavar="PATH",
                        help="sqlite score cache: repeated samples are not scored again")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a spec field, value parsed as YAML (repeatable; dotted "
                        "keys reach nested fields): --set device=cpu --set transform.add=1")


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ["a=1", "b.c=x"] into {"a": 1, "b": {"c": "x"}}; values are parsed as YAML."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set batch_size=8")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} was already set to a plain value")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_judge(ref: str, overrides: dict[str, Any], cache: str | None = None) -> Any:
    """Load a spec by name or path, apply overrides (and --cache), build the judge."""
    from rlaif.judges.spec import build_judge, load_spec, parse_spec

    spec = load_spec(ref)
    if overrides or cache:
        data = _merge(spec.model_dump(mode="json"), overrides)
        if cache:
            data["cache"] = cache
        spec = parse_spec(data, source=f"{ref} + --set/--cache")
    return build_judge(spec)


def read_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """JSON objects of a JSONL file (blank lines skipped); errors name the file and row."""
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: row {lineno}: not valid JSON ({exc.msg} at column "
                                 f"{exc.colno}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: row {lineno}: expected a JSON object, got "
                                 f"{type(row).__name__}")
            row["__row__"] = lineno
            rows.append(row)
    return rows


def to_samples(rows: list[dict[str, Any]], path: Path) -> list[list[Any]]:
    """One list of Samples per row: [sample] for prompt/response rows, [chosen, rejected] for HH."""
    from rlaif.data.hh import split_prompt_response
    from rlaif.judges.base import Sample

    out: list[list[Any]] = []
    for row in rows:
        where = f"{path}: row {row['__row__']}"
        if "response" in row:
            prompt, response = row.get("prompt", ""), row["response"]
            if not isinstance(prompt, str) or not isinstance(response, str):
                raise ValueError(f"{where}: 'prompt' and 'response' must be strings, got "
                                 f"{type(prompt).__name__} and {type(response).__name__}")
            out.append([Sample(prompt, response)])
        elif all(side in row for side in HH_SIDES):
            pair = []
            for side in HH_SIDES:
                if not isinstance(row[side], str):
                    raise ValueError(f"{where}, field {side!r}: expected a transcript string, "
                                     f"got {type(row[side]).__name__}")
                pair.append(Sample(*split_prompt_response(row[side], where=f"{where}, field {side!r}")))
            out.append(pair)
        else:
            keys = ", ".join(k for k in row if k != "__row__") or "(none)"
            raise ValueError(f"{where}: expected fields 'prompt' + 'response', or 'chosen' + "
                             f"'rejected' (HH transcripts); found: {keys}")
    return out


def summary(values: list[float | None]) -> dict[str, Any]:
    """count, mean, std (population), min, max over the scored values; unscored counted apart."""
    got = [v for v in values if v is not None]
    n = len(got)
    mean = sum(got) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in got) / n) if n else math.nan
    return {"count": n, "mean": mean, "std": std, "min": min(got) if n else math.nan,
            "max": max(got) if n else math.nan, "unscored": len(values) - n}


def _format_summary(label: str, s: dict[str, Any]) -> str:
    return (f"{label:<9} count {s['count']}  mean {s['mean']:.4f}  std {s['std']:.4f}  "
            f"min {s['min']:.4f}  max {s['max']:.4f}  unscored {s['unscored']}")


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to a temp file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resolve_data(ref: str) -> Path:
    path = Path(ref).expanduser()
    if not path.exists() and ref in SAMPLE_REFS:
        from rlaif.data.hh import sample_path

        return sample_path(SAMPLE_REFS[ref])  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"--data {ref}: no such file; pass a JSONL file or 'sample'")
    return path


def run(args: argparse.Namespace) -> int:
    """Score every row, write the output JSONL, print the summary."""
    from tqdm.auto import tqdm

    from rlaif.judges.base import JudgeError

    data = _resolve_data(args.data)
    out = Path(args.out) if args.out else Path.cwd() / f"{data.stem}.scores.jsonl"
    if out.resolve() == data.resolve():
        raise ValueError(f"--out {out} is the input file; choose another output path")
    rows = read_rows(data, args.limit)
    per_row = to_samples(rows, data)
    flat = [s for samples in per_row for s in samples]
    judge = load_judge(args.judge, parse_overrides(args.overrides), args.cache)
    scores = []
    try:
        # Load a model up front, so a missing model fails before the progress bar starts.
        load = getattr(getattr(judge, "judge", judge), "load", None)
        if callable(load):
            load()
        with tqdm(total=len(flat), desc=f"scoring with {judge.name}", unit="sample") as bar:
            for start in range(0, len(flat), CHUNK):
                chunk = flat[start:start + CHUNK]
                try:
                    scores.extend(judge.score(chunk))
                except JudgeError as exc:
                    raise JudgeError(f"{exc} (while scoring {data}, samples {start}..."
                                     f"{start + len(chunk) - 1}; {len(scores)} scored before; "
                                     "with --cache they are kept for the next run)",
                                     partial=exc.partial) from exc
                bar.update(len(chunk))
        stats = judge.stats() if hasattr(judge, "stats") else None
        usage = judge.usage()
    finally:
        judge.close()

    out_rows, it = [], iter(scores)
    by_side: dict[str, list[float | None]] = {}
    for row, samples in zip(rows, per_row):
        row = {k: v for k, v in row.items() if k != "__row__"}
        prefixes = [""] if len(samples) == 1 else [f"{side}_" for side in HH_SIDES]
        for prefix in prefixes:
            s = next(it)
            row.update({f"{prefix}score": s.value, f"{prefix}error": s.error,
                        f"{prefix}rationale": s.rationale})
            by_side.setdefault(prefix.rstrip("_") or "score", []).append(s.value)
        out_rows.append(row)
    write_jsonl_atomic(out, out_rows)

    print(f"judge {judge.name} on {data} ({len(rows)} rows) -> {out}")
    for label, values in by_side.items():
        print(_format_summary(label, summary(values)))
    if "chosen" in by_side:
        pairs = [(c, r) for c, r in zip(by_side["chosen"], by_side["rejected"])
                 if c is not None and r is not None]
        wins, ties = sum(c > r for c, r in pairs), sum(c == r for c, r in pairs)
        if pairs:
            print(f"chosen > rejected in {wins}/{len(pairs)} pairs ({wins / len(pairs):.1%}), "
                  f"ties {ties}")
    if stats:
        print(f"cache {stats['path']}: {stats['hits']} hits, {stats['misses']} misses")
    if usage.requests:
        print(f"usage: {usage.requests} requests, {usage.input_tokens} input + "
              f"{usage.output_tokens} output tokens, ~${usage.cost_usd:.4f}")
    return 0
