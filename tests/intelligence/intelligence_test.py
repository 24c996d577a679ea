"""The external-intelligence front: disk cache (a second run makes zero calls), retries with
backoff counted in metrics, and the failure policy (drop or fail, never a silent 0)."""
import pytest

from rl_jax import intelligence


class CountingJudge:
  """Scores a response by its length ratio to the reference; counts invocations."""
  identity = "counting-judge-v1"

  def __init__(self):
    self.invocations = 0
    self.rows = 0

  def score(self, prompts, responses, references=None, criteria=None):
    self.invocations += 1
    self.rows += len(prompts)
    return [min(1.0, len(r) / max(1, len(ref))) for r, ref in zip(responses, references)]


class FaultyJudge(CountingJudge):
  """Raises TimeoutError on the first `timeouts` invocations, then RuntimeError on the next
  `errors`, then answers."""
  identity = "faulty-judge-v1"

  def __init__(self, timeouts=0, errors=0):
    super().__init__()
    self.timeouts, self.errors = timeouts, errors

  def score(self, prompts, responses, references=None, criteria=None):
    self.invocations += 1
    if self.invocations <= self.timeouts:
      raise TimeoutError("judge did not answer")
    if self.invocations <= self.timeouts + self.errors:
      raise RuntimeError("judge returned HTTP 500")
    self.invocations -= 1  # counted by the parent
    return super().score(prompts, responses, references, criteria)


class EchoTeacher:
  identity = "echo-teacher"

  def __init__(self):
    self.invocations = 0

  def generate(self, prompts, n=1, temperature=0.0):
    self.invocations += 1
    return [[f"{p}#{i}" for i in range(n)] for p in prompts]


PROMPTS = ["q1", "q2", "q3"]
RESPONSES = ["ab", "abcd", ""]
REFS = ["abcd", "ab", "abc"]


def test_second_run_of_same_config_makes_zero_calls(tmp_path):
  spec = {"cache_dir": str(tmp_path / "cache")}
  first = CountingJudge()
  judge = intelligence.build("judge", spec, first)
  assert judge.score(PROMPTS, RESPONSES, REFS) == [0.5, 1.0, 0.0]
  assert first.invocations == 1 and first.rows == 3
  # A new process would build everything again: new objects, same directory.
  second = CountingJudge()
  judge2 = intelligence.build("judge", spec, second)
  assert judge2.score(PROMPTS, RESPONSES, REFS) == [0.5, 1.0, 0.0]
  assert second.invocations == 0
  assert judge2.calls.stats.cache_hits == 3 and judge2.calls.stats.calls == 0
  # A partly new batch asks only for the new row.
  assert judge2.score(PROMPTS + ["q4"], RESPONSES + ["a"], REFS + ["aaaa"])[3] == 0.25
  assert second.invocations == 1 and second.rows == 1


def test_cache_key_separates_identity_and_arguments(tmp_path):
  spec = {"cache_dir": str(tmp_path)}
  teacher = EchoTeacher()
  t = intelligence.build("teacher", spec, teacher)
  assert t.generate(["x"], n=2) == [["x#0", "x#1"]]
  assert t.generate(["x"], n=3) == [["x#0", "x#1", "x#2"]]  # n is part of the key
  assert teacher.invocations == 2
  other = EchoTeacher()
  other.identity = "echo-teacher-v2"
  intelligence.build("teacher", spec, other).generate(["x"], n=2)
  assert other.invocations == 1  # another identity never reads this one's answers


def test_faulty_judge_is_retried_with_backoff_and_counted(tmp_path):
  sleeps = []
  inner = FaultyJudge(timeouts=1, errors=1)
  judge = intelligence.build("judge", {"cache_dir": str(tmp_path), "max_retries": 3,
                                       "backoff_s": 0.5}, inner, sleep=sleeps.append)
  assert judge.score(PROMPTS, RESPONSES, REFS) == [0.5, 1.0, 0.0]
  stats = judge.calls.stats
  assert (stats.calls, stats.retries, stats.failures, stats.timeouts, stats.dropped) == \
      (3, 2, 2, 1, 0)
  assert sleeps == [0.5, 1.0]  # backoff_s * 2**k
  metrics = stats.metrics("judge")
  assert metrics["judge/retries"] == 2.0 and metrics["judge/timeouts"] == 1.0


def test_exhausted_retries_fail_the_step_by_default(tmp_path):
  inner = FaultyJudge(timeouts=10)
  judge = intelligence.build("judge", {"cache_dir": str(tmp_path), "max_retries": 2},
                             inner, sleep=lambda s: None)
  with pytest.raises(intelligence.IntelligenceError, match="3 tries failed.*TimeoutError"):
    judge.score(PROMPTS, RESPONSES, REFS)
  assert judge.calls.stats.timeouts == 3
  # Nothing was cached: a later run with a working judge asks again.
  fixed = CountingJudge()
  fixed.identity = inner.identity
  assert intelligence.build("judge", {"cache_dir": str(tmp_path)}, fixed).score(
      PROMPTS, RESPONSES, REFS) == [0.5, 1.0, 0.0]
  assert fixed.invocations == 1


def test_drop_policy_returns_none_never_zero(tmp_path):
  judge = intelligence.build("judge", {"cache_dir": str(tmp_path), "max_retries": 1,
                                       "on_failure": "drop"},
                             FaultyJudge(errors=5), sleep=lambda s: None)
  scores = judge.score(PROMPTS, RESPONSES, REFS)
  assert scores == [None, None, None]
  assert judge.calls.stats.dropped == 3 and judge.calls.stats.failures == 2


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="unknown keys \\['retries'\\]"):
    intelligence.build("judge", {"retries": 3}, CountingJudge())
  with pytest.raises(ValueError, match="on_failure"):
    intelligence.build("judge", {"on_failure": "zero"}, CountingJudge())
  with pytest.raises(ValueError, match="does not implement the teacher protocol"):
    intelligence.build("teacher", {}, CountingJudge())


def test_http_backend_is_not_imported_or_contacted_at_build_time(monkeypatch):
  """Building the openai backend constructs a client but sends nothing (no network in tests:
  urlopen is replaced by a function that fails the test)."""
  import urllib.request

  def no_network(*a, **k):
    raise AssertionError("network used")

  monkeypatch.setattr(urllib.request, "urlopen", no_network)
  judge = intelligence.build("judge", {"backend": "openai", "base_url": "http://localhost:1",
                                       "model": "m"}, None)
  assert judge.identity.startswith("openai:")


class EveryProtocol:
  """One object implementing all five protocols, counting invocations per method."""
  identity = "every-protocol"

  def __init__(self):
    self.count = {}

  def _tick(self, name):
    self.count[name] = self.count.get(name, 0) + 1

  def generate(self, prompts, n=1, temperature=0.0):
    self._tick("generate")
    return [[p.upper()] * n for p in prompts]

  def extract(self, documents):
    self._tick("extract")
    return [d.split(". ") for d in documents]

  def rewrite(self, queries, contexts):
    self._tick("rewrite")
    return [f"{q} ({c})" for q, c in zip(queries, contexts)]

  def generate_rubrics(self, queries, references):
    self._tick("generate_rubrics")
    return [[{"criterion": f"mentions {r}", "weight": 1.0}] for r in references]

  def score(self, prompts, responses, references=None, criteria=None):
    self._tick("score")
    return [[float(c in r) for c in crit] for r, crit in zip(responses, criteria)]


def test_every_protocol_goes_through_the_cache(tmp_path):
  calls = {
      "teacher": lambda x: x.generate(["a", "b"], n=2),
      "key_point_extractor": lambda x: x.extract(["one. two"]),
      "query_rewriter": lambda x: x.rewrite(["q"], ["ctx"]),
      "rubric_generator": lambda x: x.generate_rubrics(["q"], ["paris"]),
      "judge": lambda x: x.score(["p"], ["paris rome"], criteria=[["paris", "oslo"]]),
  }
  expected = {"teacher": [["A", "A"], ["B", "B"]], "key_point_extractor": [["one", "two"]],
              "query_rewriter": ["q (ctx)"],
              "rubric_generator": [[{"criterion": "mentions paris", "weight": 1.0}]],
              "judge": [[1.0, 0.0]]}
  for kind, fn in calls.items():
    first, second = EveryProtocol(), EveryProtocol()
    spec = {"cache_dir": str(tmp_path / kind)}
    assert fn(intelligence.build(kind, spec, first)) == expected[kind], kind
    assert fn(intelligence.build(kind, spec, second)) == expected[kind], kind
    assert sum(first.count.values()) == 1 and second.count == {}, kind
