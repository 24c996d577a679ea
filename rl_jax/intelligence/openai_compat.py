"""An OpenAI-compatible chat-completions client for the protocols (optional; off by default).

Selected by `IntelligenceConfig(backend="openai", base_url=..., model=...)`; never used by the
tests. Standard library only (urllib); nothing touches the network until a method is called.
The API key is read from the environment variable named by `api_key_env` at call time.
Each row is one POST to `{base_url}/chat/completions`; a timeout raises TimeoutError, which the
cache front (`rl_jax.intelligence.cache.CachedCalls`) retries and counts.
"""
from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from typing import Any, Sequence

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class OpenAICompatClient:
  def __init__(self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
               timeout_s: float = 60.0, system_prompt: str = ""):
    if not base_url or not model:
      raise ValueError("OpenAICompatClient: base_url and model are required (config "
                       "intelligence.base_url / intelligence.model)")
    self.base_url, self.model = base_url.rstrip("/"), model
    self.api_key_env, self.timeout_s, self.system_prompt = api_key_env, timeout_s, system_prompt
    self.identity = f"openai:{self.base_url}:{model}:{system_prompt}"

  def chat(self, user: str, *, n: int = 1, temperature: float = 0.0) -> list[str]:
    messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt
                else []) + [{"role": "user", "content": user}]
    body = json.dumps({"model": self.model, "messages": messages, "n": n,
                       "temperature": temperature}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(self.api_key_env, "")
    if key:
      headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(self.base_url + "/chat/completions", data=body,
                                     headers=headers, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
        payload = json.loads(response.read().decode("utf-8"))
    except socket.timeout as e:
      raise TimeoutError(f"{self.base_url}: no answer in {self.timeout_s} s") from e
    except urllib.error.URLError as e:
      if isinstance(e.reason, socket.timeout):
        raise TimeoutError(f"{self.base_url}: no answer in {self.timeout_s} s") from e
      raise
    return [choice["message"]["content"] for choice in payload["choices"]]

  # Protocol methods.
  def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 0.0
               ) -> list[list[str]]:
    return [self.chat(p, n=n, temperature=temperature) for p in prompts]

  def extract(self, documents: Sequence[str]) -> list[list[str]]:
    return [[line.strip("-* ").strip() for line in self.chat(
        "List the key points of this document, one per line:\n" + d)[0].splitlines()
             if line.strip()] for d in documents]

  def rewrite(self, queries: Sequence[str], contexts: Sequence[str]) -> list[str]:
    return [self.chat(f"Rewrite the query for this scenario.\nScenario: {c}\nQuery: {q}")[0]
            for q, c in zip(queries, contexts)]

  def generate_queries(self, documents: Sequence[str]) -> list[str]:
    return [self.chat("Write the one question a reader could ask that this post answers. "
                      f"Answer with the question only.\nPost: {d}")[0].strip() for d in documents]

  def answerable(self, documents: Sequence[str], queries: Sequence[str]) -> list[bool]:
    out = []
    for d, q in zip(documents, queries):
      text = self.chat("Does the post contain enough information to answer the question? "
                       f"Answer yes or no.\nPost: {d}\nQuestion: {q}")[0].strip().lower()
      if not text.startswith(("yes", "no")):
        raise ValueError(f"answerability answer is neither yes nor no: {text[:100]!r}")
      out.append(text.startswith("yes"))
    return out

  def generate_rubrics(self, queries: Sequence[str], references: Sequence[str]
                       ) -> list[list[dict[str, Any]]]:
    out = []
    for q, r in zip(queries, references):
      text = self.chat("Write a JSON list of {\"criterion\": str, \"weight\": float} rubric "
                       f"items for grading answers to this query.\nQuery: {q}\nReference: {r}")[0]
      items = json.loads(text[text.find("["):text.rfind("]") + 1])
      out.append([{"criterion": str(i["criterion"]), "weight": float(i["weight"])}
                  for i in items])
    return out

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[Any]:
    out = []
    for i, (p, r) in enumerate(zip(prompts, responses)):
      ref = f"\nReference: {references[i]}" if references is not None else ""
      if criteria is None:
        text = self.chat(f"Score the response from 0 to 1.\nPrompt: {p}\nResponse: {r}{ref}\n"
                         "Answer with the number only.")[0]
        out.append(_unit_number(text))
      else:
        out.append([_unit_number(self.chat(
            f"Does the response meet the criterion? Score 0 to 1.\nCriterion: {c}\nPrompt: {p}\n"
            f"Response: {r}{ref}\nAnswer with the number only.")[0]) for c in criteria[i]])
    return out


def _unit_number(text: str) -> float:
  """The first number of a judge's answer, which must lie in [0, 1]; anything else raises (and
  is retried), never silently read as 0."""
  match = _NUMBER.search(text)
  if match is None or not 0.0 <= float(match.group()) <= 1.0:
    raise ValueError(f"judge answer has no score in [0, 1]: {text[:100]!r}")
  return float(match.group())
