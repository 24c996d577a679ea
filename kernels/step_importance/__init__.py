"""SWAP step importance and penalty redistribution as one fused segment reduction; see `api.py`."""
from rl_jax.kernels.step_importance.api import IMPLEMENTATIONS, StepPenalties, step_penalties

__all__ = ["IMPLEMENTATIONS", "StepPenalties", "step_penalties"]
