"""A content-hash disk cache, retries with backoff, and call metrics, in front of every
external-intelligence call (docs/architecture.md; the protocols: `rl_jax.intelligence.protocols`).

    cached = CachedCalls(DiskCache(dir), CallPolicy(max_retries=3, on_failure="drop"))
    values = cached.map("teacher", teacher.identity, rows, lambda missing: teacher_call(missing))

Per row, the key is sha256 of the canonical JSON of (kind, identity, row): the same config asks
the same questions, so a second run finds every answer on disk and makes zero calls. Only
successful answers are stored: a failure is never cached (a later run asks again).

A call that raises (a timeout, a connection error, a malformed answer the implementation
rejects) is retried up to `max_retries` times with exponential backoff
(`backoff_s * 2**attempt`, capped at `max_backoff_s`). When every try failed, the policy says
what happens; a failure is never turned into a score of 0:
  on_failure="fail": `IntelligenceError` is raised (the step fails, naming the call);
  on_failure="drop": the rows come back as None; the caller drops them (counted as `dropped`).
`stats` counts calls (implementation invocations, each retry included), cache hits, misses,
retries, failures (invocations that raised), timeouts (of those, TimeoutErrors) and dropped
rows; `metrics(prefix)` gives them as logged scalars.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from typing import Any, Callable, Sequence

ON_FAILURE = ("fail", "drop")


class IntelligenceError(RuntimeError):
  """Every try of an external call failed and the policy is on_failure="fail"."""


def content_key(kind: str, identity: str, row: Any) -> str:
  """sha256 of the canonical JSON (sorted keys, no whitespace) of (kind, identity, row)."""
  payload = json.dumps({"kind": kind, "identity": identity, "row": row}, sort_keys=True,
                       separators=(",", ":"), ensure_ascii=False)
  return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class DiskCache:
  """One JSON file per key under `directory/<key[:2]>/<key>.json`; writes are atomic
  (temporary file + os.replace), so an interrupted run never leaves a half-written answer."""

  def __init__(self, directory: str):
    if not directory:
      raise ValueError("DiskCache.directory: expected a directory path, got an empty string")
    self.directory = directory

  def _path(self, key: str) -> str:
    return os.path.join(self.directory, key[:2], key + ".json")

  def get(self, key: str) -> tuple[bool, Any]:
    """(found, value)."""
    path = self._path(key)
    if not os.path.exists(path):
      return False, None
    with open(path, encoding="utf-8") as f:
      return True, json.load(f)["value"]

  def put(self, key: str, value: Any) -> None:
    path = self._path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump({"value": value}, f, ensure_ascii=False)
    os.replace(tmp, path)


class MemoryCache:
  """The same interface in memory (no directory configured: nothing persists across runs)."""

  def __init__(self):
    self.store: dict[str, Any] = {}

  def get(self, key: str) -> tuple[bool, Any]:
    return (key in self.store), self.store.get(key)

  def put(self, key: str, value: Any) -> None:
    self.store[key] = value


@dataclasses.dataclass(frozen=True)
class CallPolicy:
  """max_retries: tries after the first; backoff_s: sleep before retry k is
  backoff_s * 2**k (k = 0, 1, ...), at most max_backoff_s; on_failure: "fail" or "drop"
  (module docstring)."""
  max_retries: int = 3
  backoff_s: float = 1.0
  max_backoff_s: float = 30.0
  on_failure: str = "fail"

  def __post_init__(self):
    if self.max_retries < 0:
      raise ValueError(f"CallPolicy.max_retries must be >= 0, got {self.max_retries}")
    if self.backoff_s < 0 or self.max_backoff_s < 0:
      raise ValueError(f"CallPolicy.backoff_s / max_backoff_s must be >= 0, got "
                       f"{self.backoff_s} / {self.max_backoff_s}")
    if self.on_failure not in ON_FAILURE:
      raise ValueError(f"CallPolicy.on_failure must be one of {ON_FAILURE}, got "
                       f"{self.on_failure!r}")


@dataclasses.dataclass
class CallStats:
  calls: int = 0
  cache_hits: int = 0
  misses: int = 0
  retries: int = 0
  failures: int = 0
  timeouts: int = 0
  dropped: int = 0

  def metrics(self, prefix: str = "intelligence") -> dict[str, float]:
    return {f"{prefix}/{f.name}": float(getattr(self, f.name)) for f in dataclasses.fields(self)}


class CachedCalls:
  """The cache + retry + metrics front of every call (module docstring). `sleep` is injectable
  so tests do not wait."""

  def __init__(self, cache: DiskCache | MemoryCache, policy: CallPolicy = CallPolicy(),
               sleep: Callable[[float], None] = time.sleep):
    self.cache, self.policy, self.sleep = cache, policy, sleep
    self.stats = CallStats()

  def _invoke(self, kind: str, call: Callable[[list[Any]], list[Any]], rows: list[Any]
              ) -> list[Any] | None:
    """The implementation's answers for `rows`, retried; None when every try failed."""
    last = None
    for attempt in range(self.policy.max_retries + 1):
      if attempt:
        self.stats.retries += 1
        self.sleep(min(self.policy.backoff_s * 2 ** (attempt - 1), self.policy.max_backoff_s))
      self.stats.calls += 1
      try:
        values = list(call(rows))
      except Exception as e:  # pylint: disable=broad-except  (any failure of the backend)
        self.stats.failures += 1
        self.stats.timeouts += isinstance(e, TimeoutError)
        last = e
        continue
      if len(values) != len(rows):
        self.stats.failures += 1
        last = ValueError(f"{kind}: {len(values)} answers for {len(rows)} rows")
        continue
      return values
    if self.policy.on_failure == "fail":
      raise IntelligenceError(f"{kind}: {self.policy.max_retries + 1} tries failed for "
                              f"{len(rows)} rows; last error: {type(last).__name__}: {last}")
    return None

  def map(self, kind: str, identity: str, rows: Sequence[Any],
          call: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """One answer per row (None for a dropped row): from the cache where present, else from
    `call(missing_rows)` (one batched call for all misses), stored on success."""
    keys = [content_key(kind, identity, row) for row in rows]
    out: list[Any] = [None] * len(rows)
    missing = []
    for i, key in enumerate(keys):
      found, value = self.cache.get(key)
      if found:
        self.stats.cache_hits += 1
        out[i] = value
      else:
        missing.append(i)
    self.stats.misses += len(missing)
    if missing:
      values = self._invoke(kind, call, [rows[i] for i in missing])
      if values is None:
        self.stats.dropped += len(missing)
      else:
        for i, value in zip(missing, values):
          self.cache.put(keys[i], value)
          out[i] = value
    return out
