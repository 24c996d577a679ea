"""rl_jax.envs."""
