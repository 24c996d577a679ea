"""The OpenAI-compatible client against a fake transport (no network): the request it sends, how
it reads answers, and that timeouts and unreadable judge answers raise (to be retried and
counted by the cache front) instead of scoring 0."""
from __future__ import annotations

import io
import json
import socket
import urllib.error

import pytest

from rl_jax.intelligence import openai_compat


class _FakeTransport:
  """Stands in for urllib.request.urlopen: records each request, answers from a queue."""

  def __init__(self, answers):
    self.answers, self.requests = list(answers), []

  def __call__(self, request, timeout):
    self.requests.append((request, timeout))
    answer = self.answers.pop(0)
    if isinstance(answer, BaseException):
      raise answer
    payload = {"choices": [{"message": {"content": text}} for text in answer]}
    return io.BytesIO(json.dumps(payload).encode("utf-8"))


@pytest.fixture
def transport(monkeypatch):
  def install(*answers):
    fake = _FakeTransport(answers)
    monkeypatch.setattr(openai_compat.urllib.request, "urlopen", fake)
    return fake
  return install


def _client(**kw):
  return openai_compat.OpenAICompatClient(base_url="http://judge.invalid/v1/", model="m", **kw)


def test_request_shape_and_key_from_environment(transport, monkeypatch):
  fake = transport(["a", "b"])
  monkeypatch.setenv("MY_KEY", "secret")
  out = _client(api_key_env="MY_KEY", system_prompt="be brief", timeout_s=7).generate(
      ["q"], n=2, temperature=0.5)
  assert out == [["a", "b"]]
  (request, timeout), = fake.requests
  assert request.full_url == "http://judge.invalid/v1/chat/completions" and timeout == 7
  assert request.get_header("Authorization") == "Bearer secret"
  body = json.loads(request.data)
  assert body == {"model": "m", "n": 2, "temperature": 0.5,
                  "messages": [{"role": "system", "content": "be brief"},
                               {"role": "user", "content": "q"}]}


def test_no_key_sends_no_authorization_header(transport, monkeypatch):
  fake = transport(["x"])
  monkeypatch.delenv("OPENAI_API_KEY", raising=False)
  _client().generate(["q"])
  assert fake.requests[0][0].get_header("Authorization") is None


def test_scores_rubrics_and_key_points_are_parsed(transport):
  transport(["Score: 0.75"], ["1"], ["0"],
            ['Here: [{"criterion": "names the city", "weight": 2}]'],
            ["- first point\n\n* second point"])
  client = _client()
  assert client.score(["p"], ["r"], references=["ref"]) == [0.75]
  assert client.score(["p"], ["r"], criteria=[["c1", "c2"]]) == [[1.0, 0.0]]
  assert client.generate_rubrics(["q"], ["ref"]) == [[{"criterion": "names the city",
                                                       "weight": 2.0}]]
  assert client.extract(["doc"]) == [["first point", "second point"]]


@pytest.mark.parametrize("answer", ["no idea", "7", "-0.5"])
def test_a_judge_answer_without_a_unit_score_raises(transport, answer):
  transport([answer])
  with pytest.raises(ValueError, match="no score in"):
    _client().score(["p"], ["r"])


@pytest.mark.parametrize("error", [socket.timeout("slow"), urllib.error.URLError(socket.timeout())])
def test_timeouts_raise_timeout_error(transport, error):
  transport(error)
  with pytest.raises(TimeoutError, match="no answer in 3"):
    _client(timeout_s=3).generate(["q"])


def test_base_url_and_model_are_required():
  with pytest.raises(ValueError, match="base_url and model"):
    openai_compat.OpenAICompatClient(base_url="", model="m")
