"""From a config dict to a protocol object behind the cache (`build(kind, spec, oracle)`)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from rl_jax.intelligence.cache import CachedCalls, CallPolicy, DiskCache, MemoryCache
from rl_jax.intelligence.cached_protocols import WRAPPERS
from rl_jax.intelligence.protocols import PROTOCOLS

BACKENDS = ("oracle", "openai")


@dataclasses.dataclass(frozen=True)
class IntelligenceConfig:
  """backend: "oracle" (the project's deterministic implementation; default, no network) or
  "openai" (`rl_jax.intelligence.openai_compat`, needs base_url and model; the key is read
  from the environment variable `api_key_env`). cache_dir: the content-hash disk cache ("" =
  in memory only: nothing persists across runs). max_retries, backoff_s, max_backoff_s,
  on_failure ("fail" | "drop"): the retry policy (`rl_jax.intelligence.cache.CallPolicy`).
  timeout_s: per HTTP request."""
  backend: str = "oracle"
  cache_dir: str = ""
  max_retries: int = 3
  backoff_s: float = 1.0
  max_backoff_s: float = 30.0
  on_failure: str = "fail"
  base_url: str = ""
  model: str = ""
  api_key_env: str = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  system_prompt: str = ""

  def __post_init__(self):
    if self.backend not in BACKENDS:
      raise ValueError(f"intelligence.backend must be one of {BACKENDS}, got {self.backend!r}")


def config_from(spec: Mapping[str, Any] | IntelligenceConfig | None, where: str
                ) -> IntelligenceConfig:
  if isinstance(spec, IntelligenceConfig):
    return spec
  spec = dict(spec or {})
  fields = {f.name for f in dataclasses.fields(IntelligenceConfig)}
  unknown = sorted(set(spec) - fields)
  if unknown:
    raise ValueError(f"{where}: unknown keys {unknown}; valid keys: {sorted(fields)}")
  return IntelligenceConfig(**spec)


def build(kind: str, spec: Mapping[str, Any] | IntelligenceConfig | None, oracle: Any, *,
          where: str = "intelligence", sleep=None):
  """The `kind` protocol ("teacher", "judge", ...) for `spec`: the given oracle or the HTTP
  client, behind `CachedCalls`. The result's `.calls.stats` holds the call metrics."""
  if kind not in PROTOCOLS:
    raise ValueError(f"{where}: unknown protocol {kind!r}; known: {sorted(PROTOCOLS)}")
  cfg = config_from(spec, where)
  if cfg.backend == "oracle":
    inner = oracle
  else:
    from rl_jax.intelligence.openai_compat import OpenAICompatClient  # pylint: disable=g-import-not-at-top
    inner = OpenAICompatClient(base_url=cfg.base_url, model=cfg.model,
                               api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s,
                               system_prompt=cfg.system_prompt)
  if not isinstance(inner, PROTOCOLS[kind]):
    raise ValueError(f"{where}: {type(inner).__name__} does not implement the {kind} protocol")
  cache = DiskCache(cfg.cache_dir) if cfg.cache_dir else MemoryCache()
  policy = CallPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s,
                      max_backoff_s=cfg.max_backoff_s, on_failure=cfg.on_failure)
  calls = CachedCalls(cache, policy) if sleep is None else CachedCalls(cache, policy, sleep)
  return WRAPPERS[kind](inner, calls)
