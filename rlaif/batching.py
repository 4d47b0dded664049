"""Token rows to padded tensors: the one padding helper of training, evaluation and the judges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch


def pad_rows(rows: list[list[int]], pad: int, *, side: Literal["left", "right"],
             min_width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows -> (ids, attention_mask) (B, W), padded on `side` to the longest row (at least `min_width`)."""
    import torch

    width = max([min_width, *(len(r) for r in rows)])
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, cols] = torch.tensor(r, dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask
