"""External intelligence (teachers, judges, rubric writers, ...) behind protocols, with a
content-hash disk cache, retries and metrics in front of every call.

- `protocols`: `Teacher`, `KeyPointExtractor`, `QueryRewriter`, `RubricGenerator`, `Judge`,
  `QueryGenerator`, `AnswerabilityFilter`.
- `cache`: `DiskCache`, `CallPolicy`, `CachedCalls` (retries with backoff, `CallStats`),
  `IntelligenceError`.
- `cached_protocols`: each protocol wrapped by `CachedCalls`.
- `build`: `IntelligenceConfig` and `build(kind, spec, oracle)`; backend "oracle" (default) or
  "openai" (`openai_compat`, imported only when selected; no network at import).
"""
from rl_jax.intelligence.protocols import (PROTOCOLS, AnswerabilityFilter, Judge,
                                           KeyPointExtractor, QueryGenerator, QueryRewriter,
                                           RubricGenerator, Teacher)
from rl_jax.intelligence.cache import (CachedCalls, CallPolicy, CallStats, DiskCache,
                                       IntelligenceError, MemoryCache, content_key)
from rl_jax.intelligence.build import IntelligenceConfig, build, config_from

__all__ = ["PROTOCOLS", "AnswerabilityFilter", "QueryGenerator", "CachedCalls", "CallPolicy", "CallStats", "DiskCache",
           "IntelligenceConfig", "IntelligenceError", "Judge", "KeyPointExtractor",
           "MemoryCache", "QueryRewriter", "RubricGenerator", "Teacher", "build", "config_from",
           "content_key"]
