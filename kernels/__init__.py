"""Pallas kernels with XLA fallbacks and plain-jnp references; installed as `rl_jax.kernels`."""
