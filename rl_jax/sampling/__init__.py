"""rl_jax.sampling."""
