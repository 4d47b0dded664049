"""The one judging loop behind `rlaif score`, `compare` and `label`: small batches, each
answer written before the next request, and a clean stop.

    answered = answer_in_batches(judge.score, samples, batch=8, keep=journal_rows, signals=signals)

`keep(positions, answers)` sees every batch's answers as soon as the judge returns them (and,
on a stop, the answers a JudgeError carried in `.partial`); it writes them to the job's
journal, so a kill loses at most the batch in flight. The loop stops:

- on a signal (`GracefulStop`: SIGINT, SIGTERM, SIGHUP) after the batch in flight is finished
  and kept: nothing paid for is lost;
- on a `JudgeError` (a budget, an authentication failure), keeping its `.partial`;
- at once on a second signal or a KeyboardInterrupt from inside the judge: the answers of
  the batch in flight are lost (said in the message).

It never raises for these: `Answered.stop` says why it stopped, and the view turns it into
`WorkbenchStopped` with what was kept, where, and how to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rlaif.judges.base import JudgeError
from rlaif.runs.signals import GracefulStop

U = TypeVar("U")  # what the judge is asked (a Sample, a Pair)
A = TypeVar("A")  # what it answers (a Score, a Preference)

RESUME_HINT = "rerun the same command with --resume to continue: nothing kept is asked again"


@dataclass(frozen=True)
class Stop:
    """Why a job stopped early, and the units (0-based positions) of the batch in flight."""

    reason: str
    interrupted: bool = False  # a signal or Ctrl-C (exit code 130), not a judge error (1)
    lost: int = 0  # answers in flight a forced stop could not keep
    batch: tuple[int, int] = (0, 0)  # [first, last] unit of the batch in flight

    @property
    def exit_code(self) -> int:
        """130 for an interruption, 1 for a judge error."""
        return 130 if self.interrupted else 1


class WorkbenchStopped(Exception):
    """A judging job stopped early; the message says what was kept, where, and how to resume."""

    def __init__(self, message: str, stop: Stop) -> None:
        super().__init__(message)
        self.stop = stop

    @property
    def exit_code(self) -> int:
        """130 for an interruption, 1 for a judge error."""
        return self.stop.exit_code


@dataclass
class Answered(Generic[A]):
    """One answer per unit (None where none came), why the loop stopped, batch wall times."""

    answers: list[A | None]
    stop: Stop | None = None
    batch_seconds: list[float] = field(default_factory=list)


def answer_in_batches(ask: Callable[[Sequence[U]], Sequence[A]], units: Sequence[U], *, batch: int,
                      keep: Callable[[Sequence[int], Sequence[A]], Any],
                      signals: GracefulStop | None = None,
                      progress: Callable[[int], Any] | None = None) -> Answered[A]:
    """Ask `units` `batch` at a time, `keep` each batch's answers; see the module doc."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    done: Answered[A] = Answered([None] * len(units))
    for start in range(0, len(units), batch):
        if signals is not None and signals.requested:
            done.stop = Stop(f"stopped by {signals.requested}", interrupted=True, batch=(start, start))
            return done
        positions = list(range(start, min(start + batch, len(units))))
        span = (positions[0], positions[-1])
        t0 = time.perf_counter()
        try:
            got: Sequence[A | None] = ask([units[i] for i in positions])
        except JudgeError as exc:
            got = list(exc.partial or [])
            _keep(done, keep, positions, got)
            done.stop = Stop(str(exc) or type(exc).__name__, batch=span)
            return done
        except KeyboardInterrupt as exc:
            reason = str(exc) or (f"{signals.requested}, then stopped at once" if signals and signals.requested
                                  else "interrupted (KeyboardInterrupt) inside the judge")
            done.stop = Stop(reason, interrupted=True, lost=len(positions), batch=span)
            return done
        done.batch_seconds.append(time.perf_counter() - t0)
        if len(got) != len(positions):
            raise JudgeError(f"the judge returned {len(got)} answers for {len(positions)} items")
        _keep(done, keep, positions, got)
        if progress is not None:
            progress(len(positions))
    return done  # a signal during the last batch: everything is answered, nothing to stop


def _keep(done: Answered[A], keep: Callable[[Sequence[int], Sequence[A]], Any],
          positions: Sequence[int], got: Sequence[A | None]) -> None:
    pairs = [(p, a) for p, a in zip(positions, got) if a is not None]
    for p, a in pairs:
        done.answers[p] = a
    keep([p for p, _ in pairs], [a for _, a in pairs])


def stop_message(stop: Stop, *, doing: str, kept: str, where: Any) -> str:
    """`<why> (<doing>); <kept> are kept in <where>[; lost]; how to resume.` Never blank."""
    lost = (f"; the {stop.lost} answer(s) in flight were not kept and will be asked again"
            if stop.lost else "")
    return f"{stop.reason} ({doing}); {kept} are kept in {where}{lost}; {RESUME_HINT}"
