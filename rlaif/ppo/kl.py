"""KL coefficient controllers: fixed, or adaptive toward a target KL (Ziegler et al. 2019).

Both share one interface: `.value` (the current `kl_coef`), `.update(current_kl, n_steps)`
once per PPO batch, and `state_dict()` / `load_state_dict()` for checkpoints.
"""

from __future__ import annotations

from typing import Any, Literal

# Ziegler et al. clip the proportional error so one noisy batch moves kl_coef at most 20%
# of n_steps / horizon.
PROPORTIONAL_ERROR_CLIP = 0.2


class FixedKLController:
    """A constant `kl_coef`; `update` does nothing."""

    kind = "fixed"

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Keep the coefficient as it is."""

    def state_dict(self) -> dict[str, Any]:
        """The controller's state, for checkpoints."""
        return {"kind": self.kind, "value": self.value}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore the state written by `state_dict`."""
        _check_kind(d, self.kind)
        self.value = float(d["value"])


class AdaptiveKLController:
    """Move `kl_coef` so the measured KL approaches `target` over `horizon` samples.

    error = clip(current_kl / target - 1, -0.2, 0.2);  kl_coef *= 1 + error * n_steps / horizon
    """

    kind = "adaptive"

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if target <= 0:
            raise ValueError(f"adaptive KL target must be > 0, got {target}; set kl.target to e.g. 6.0")
        if horizon <= 0:
            raise ValueError(f"adaptive KL horizon must be > 0, got {horizon}; e.g. 10000")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Scale the coefficient by the clipped proportional error, weighted by n_steps / horizon."""
        proportional_error = current_kl / self.target - 1.0
        proportional_error = max(-PROPORTIONAL_ERROR_CLIP, min(PROPORTIONAL_ERROR_CLIP, proportional_error))
        mult = 1.0 + proportional_error * n_steps / self.horizon
        self.value *= mult

    def state_dict(self) -> dict[str, Any]:
        """The controller's state, for checkpoints."""
        return {"kind": self.kind, "value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore the state written by `state_dict`."""
        _check_kind(d, self.kind)
        self.value = float(d["value"])
        self.target = float(d["target"])
        self.horizon = int(d["horizon"])


KLController = FixedKLController | AdaptiveKLController


def make_kl_controller(kind: Literal["fixed", "adaptive"], kl_coef: float, target: float | None = None,
                       horizon: int = 10000) -> KLController:
    """Build the controller named by `kind` ("fixed" or "adaptive")."""
    if kind == "fixed":
        return FixedKLController(kl_coef)
    if kind == "adaptive":
        if target is None:
            raise ValueError(
                "adaptive KL control needs a target KL: set target (e.g. 6.0, as in Ziegler et al.) "
                "or use kind='fixed'"
            )
        return AdaptiveKLController(kl_coef, target, horizon)
    raise ValueError(f"KL controller kind {kind!r} is not one of 'fixed', 'adaptive'")


def _check_kind(d: dict[str, Any], kind: str) -> None:
    if d.get("kind", kind) != kind:
        raise ValueError(f"cannot load a {d.get('kind')!r} KL controller state into a {kind!r} controller")
