"""The graduated tool-orchestration reward (seed S4, arXiv 2603.24709), ported from the authors'
`training/reward/complex_tool.py` (`compute_score`; docs/tool_orchestration.md).

Inputs are what the authors' scorer reads: the model's parsed calls ({"name", "arguments"}
dicts, in order), the (call, response) pairs (each call paired with the next unused response
after it; responses are parsed JSON), and the ground truth per step.

Atomic validity, per model call c (`atomic_validity`). The ground-truth trace is that of the
FIRST step whose function is c's name (`atomic_match="first"`, the authors' code; "occurrence"
is our correction for workflows that call one function twice, `_trace_of`); no such step gives
ast = sem = 0. Otherwise:
  name       0.33 if c.name equals the trace's function (always, given the lookup);
  structure  0.33 * |P_c & P_gt| / |P_gt| * (type-compatible fraction over P_c & P_gt)
             (int and float are compatible, every other pair needs the same Python type, so a
             bool is not an int); if the trace has no params: 0.33 iff c has none either;
  values     0.34 iff BFCL's strict `simple_function_checker` passes (`strict_values_match`):
             every gt param present, no extra param, each value of the gt's type (an int is
             accepted for a float) and equal to the gt value (strings compared after BFCL's
             `standardize_string`: lower case, without spaces and ,./-_*^);
  ast(c) = name + structure + values;
  sem(c) = 1 iff the trace expects success, c has a response (the first unused pair with the
           same name and sorted arguments), and the response is not a dict with an "error" key,
           or "status" == False, or empty;
  R_atomic = mean over the model's calls of (ast(c) + sem(c)) / 2; 0 without calls.
Orchestration (`orchestration`): for each ground-truth step s in order, the first model call
(by position p) whose name is the step's function (and the step expects success) and, if s has
dependencies, every dependency step was matched at a position < p (else the search goes on);
R_s = 1 if found. R_orch = sum_s w_s R_s / sum_s w_s, w_s = 1 ("uniform") or the number of
acceptable calls of the step ("dependency"; 1 here). A call may match several steps.
Total: R = w_atomic R_atomic + w_orch R_orch (+ 0 * R_state, a placeholder in the paper's code);
(0.5, 0.5) is the paper's reward, (1, 0) and (0, 1) its single-component ablations.

Full-workflow success (`workflow_success`, also the "binary" reward): the orchestration walk
with a strict matcher (name, strict values and sem = 1), every step matched. Turn accuracy: the
fraction of steps matched by that strict walk.

Malformed call text: the authors' parser drops a call whose JSON does not parse (it is not among
the model's calls, so it neither earns nor dilutes the atomic mean); `extract_calls_and_responses`
does the same.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Mapping, Sequence

NAME_SCORE, STRUCTURE_SCORE, VALUE_SCORE = 0.33, 0.33, 0.34
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
_BFCL_STRIP = re.compile(r"[ \,\.\/\-\_\*\^]")
WEIGHT_MODES = ("uniform", "dependency")
ATOMIC_MATCHES = ("first", "occurrence")
REWARDS = {"graduated": (0.5, 0.5), "atomic": (1.0, 0.0), "orchestration": (0.0, 1.0)}
REWARD_NAMES = tuple(REWARDS) + ("binary",)


def reads_atomic_match(reward: str) -> bool:
  """Whether the reward named `reward` depends on `atomic_match`: only through R_atomic, so not
  "binary" (the strict walk) nor a reward whose atomic weight is 0 ("orchestration")."""
  return reward in REWARDS and REWARDS[reward][0] > 0


@dataclasses.dataclass(frozen=True)
class GroundTruthStep:
  """One step of the ground truth: the function, its exact arguments, the steps it depends
  on, and whether the call is expected to succeed (the paper's `success`)."""
  function: str
  arguments: Mapping[str, Any]
  depends_on: tuple[int, ...] = ()
  success: bool = True


def safe_arguments(call: Any) -> dict[str, Any]:
  """The call's arguments dict; a JSON string holding an object is parsed; anything else {}."""
  if not isinstance(call, dict):
    return {}
  args = call.get("arguments", {})
  if isinstance(args, dict):
    return args
  if isinstance(args, str):
    try:
      parsed = json.loads(args)
    except ValueError:
      return {}
    return parsed if isinstance(parsed, dict) else {}
  return {}


def types_compatible(v1: Any, v2: Any) -> bool:
  """int/float interchangeable (JSON does not distinguish them); otherwise the same type.
  (As in the authors' code, isinstance(True, int) holds, so a bool and a number are
  compatible here; the strict value check still rejects a bool for an int.)"""
  if isinstance(v1, (int, float)) and isinstance(v2, (int, float)):
    return True
  return type(v1) == type(v2)  # pylint: disable=unidiomatic-typecheck


def _bfcl_string(s: str) -> str:
  return _BFCL_STRIP.sub("", s).lower().replace("'", '"')


def _values_equal(value: Any, expected: Any) -> bool:
  """BFCL's type check (exact Python type, int accepted for float) then value check."""
  if isinstance(expected, float) and type(value) == int:  # pylint: disable=unidiomatic-typecheck
    value = float(value)
  if type(value) != type(expected):  # pylint: disable=unidiomatic-typecheck
    return False
  if isinstance(expected, str):
    return _bfcl_string(value) == _bfcl_string(expected)
  if isinstance(expected, list):
    norm = lambda xs: [_bfcl_string(x) if isinstance(x, str) else x for x in xs]
    return norm(value) == norm(expected)
  return value == expected


def strict_values_match(arguments: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
  """BFCL `simple_function_checker` with every gt argument required and its only answer."""
  if set(arguments) != set(expected):
    return False
  return all(_values_equal(arguments[k], expected[k]) for k in expected)


def ast_scores(call: Mapping[str, Any], gt: GroundTruthStep) -> tuple[float, float, float]:
  """(name, structure, values) of a call against its ground-truth trace."""
  if call.get("name", "") != gt.function:
    return 0.0, 0.0, 0.0
  args, gt_args = safe_arguments(call), dict(gt.arguments)
  if not gt_args:
    structure = STRUCTURE_SCORE if not args else 0.0
  else:
    shared = set(args) & set(gt_args)
    overlap = len(shared) / len(gt_args)
    types = (sum(types_compatible(args[p], gt_args[p]) for p in shared) / len(shared)
             if shared else 0.0)
    structure = STRUCTURE_SCORE * overlap * types
  values = VALUE_SCORE if strict_values_match(args, gt_args) else 0.0
  return NAME_SCORE, structure, values


def response_ok(response: Any) -> bool:
  """The semantic check of a response that exists: not an error dict, status not False, not
  an empty dict; lists, strings and numbers pass."""
  if isinstance(response, dict):
    if "error" in response:
      return False
    if "status" in response and response["status"] == False:  # pylint: disable=g-explicit-bool-comparison
      return False
    return len(response) > 0
  return isinstance(response, (list, str, int, float, bool))


def _signature(call: Mapping[str, Any]) -> tuple[str, str]:
  return call.get("name", ""), str(sorted(safe_arguments(call).items()))


@dataclasses.dataclass
class AtomicResult:
  reward: float
  name: list[float]
  structure: list[float]
  values: list[float]
  semantic: list[float]


def _trace_of(call: Any, steps: Sequence[GroundTruthStep], seen: dict[str, int],
              atomic_match: str) -> GroundTruthStep | None:
  """The ground-truth step a call is scored against (None: no step has its name).

  "first" (the authors' code): the first step with the call's function, for every call.
  "occurrence": the k-th call of a function against the k-th step with that function (calls
  past the last such step against the last). The two agree whenever each function occurs once
  in the workflow; where one occurs twice (two airport searches), "first" scores the second
  call against the first step's arguments, so the correct second call earns no value credit
  and a repeat of the first call earns it (docs/tool_orchestration.md)."""
  if not isinstance(call, dict):
    return None
  name = call.get("name", "")
  candidates = [st for st in steps if st.function == name]
  if not candidates:
    return None
  if atomic_match == "first":
    return candidates[0]
  k = seen.get(name, 0)
  seen[name] = k + 1
  return candidates[min(k, len(candidates) - 1)]


def atomic_validity(calls: Sequence[Any], pairs: Sequence[tuple[Any, Any]],
                    steps: Sequence[GroundTruthStep], atomic_match: str = "first"
                    ) -> AtomicResult:
  """R_atomic (module docstring) and the per-call scores; `atomic_match` chooses the trace a
  call is scored against (`_trace_of`)."""
  if atomic_match not in ATOMIC_MATCHES:
    raise ValueError(f"atomic_match must be one of {ATOMIC_MATCHES}, got {atomic_match!r}")
  lookup: dict[tuple[str, str], list[tuple[int, Any]]] = {}
  for i, (call, response) in enumerate(pairs):
    if isinstance(call, dict):
      lookup.setdefault(_signature(call), []).append((i, response))
  used: set[int] = set()
  seen: dict[str, int] = {}
  res = AtomicResult(0.0, [], [], [], [])
  for call in calls:
    n = s = v = sem = 0.0
    gt = _trace_of(call, steps, seen, atomic_match)
    if gt is not None:
      n, s, v = ast_scores(call, gt)
      response, found = None, False
      for i, r in lookup.get(_signature(call), []):
        if i not in used:
          used.add(i)
          response, found = r, True
          break
      sem = float(gt.success and found and response is not None and response_ok(response))
    res.name.append(n)
    res.structure.append(s)
    res.values.append(v)
    res.semantic.append(sem)
  if calls:
    ast = sum(res.name + res.structure + res.values) / len(calls)
    res.reward = (ast + sum(res.semantic) / len(calls)) / 2
  return res


def orchestration_walk(calls: Sequence[Any], steps: Sequence[GroundTruthStep],
                       matches: Callable[[int, GroundTruthStep], bool],
                       weight_mode: str = "uniform") -> tuple[float, list[float]]:
  """(R, per-step R_s) of the dependency-aware walk (module docstring); `matches(p, step)`
  says whether the call at position p matches the step."""
  if weight_mode not in WEIGHT_MODES:
    raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {weight_mode!r}")
  matched: dict[int, int] = {}
  rewards = []
  for s, step in enumerate(steps):
    for p in range(len(calls)):
      if not matches(p, step):
        continue
      if step.depends_on and any(d not in matched or matched[d] >= p for d in step.depends_on):
        continue
      matched[s] = p
      break
    rewards.append(float(s in matched))
  weights = [1.0] * len(steps)  # "dependency": |acceptable calls of the step| = 1 here
  total = sum(weights)
  return (sum(r * w for r, w in zip(rewards, weights)) / total if total else 0.0), rewards


def orchestration(calls: Sequence[Any], steps: Sequence[GroundTruthStep],
                  weight_mode: str = "uniform") -> float:
  """R_orch: matching by name only (and the step expects success)."""
  name_of = [c.get("name") if isinstance(c, dict) else None for c in calls]
  return orchestration_walk(calls, steps, lambda p, st: name_of[p] == st.function and st.success,
                            weight_mode)[0]


def strict_walk(calls: Sequence[Any], pairs: Sequence[tuple[Any, Any]],
                steps: Sequence[GroundTruthStep]) -> list[float]:
  """Per-step 1/0 of the strict walk: a call matches a step iff its name and values are exact
  and its own response (the pair at the same position; `pairs` aligned with `calls`, None for
  a call without response) passes the semantic check."""
  responses = [r for _, r in pairs]

  def exact(p: int, st: GroundTruthStep) -> bool:
    c = calls[p]
    return (isinstance(c, dict) and c.get("name") == st.function and st.success
            and strict_values_match(safe_arguments(c), st.arguments)
            and p < len(responses) and responses[p] is not None and response_ok(responses[p]))

  return orchestration_walk(calls, steps, exact)[1]


def workflow_success(calls, pairs, steps) -> float:
  rewards = strict_walk(calls, pairs, steps)
  return float(bool(rewards) and all(rewards))


def score(calls: Sequence[Any], pairs: Sequence[tuple[Any, Any]],
          steps: Sequence[GroundTruthStep], *, reward: str = "graduated",
          weight_mode: str = "uniform", atomic_match: str = "first") -> dict[str, float]:
  """The reward named `reward` ("graduated", "atomic", "orchestration", "binary") and every
  component, as floats: reward, R_atomic, R_orch, ast parts, success, turn_accuracy.
  `atomic_match`: "first" (the paper's code) or "occurrence" (`_trace_of`)."""
  if reward not in REWARD_NAMES:
    raise ValueError(f"reward must be one of {REWARD_NAMES}, got {reward!r}")
  atomic = atomic_validity(calls, pairs, steps, atomic_match)
  r_orch = orchestration(calls, steps, weight_mode)
  aligned = _aligned_pairs(calls, pairs)
  turns = strict_walk(calls, aligned, steps)
  success = float(bool(turns) and all(turns))
  if reward == "binary":
    total = success
  else:
    w_atomic, w_orch = REWARDS[reward]
    total = w_atomic * atomic.reward + w_orch * r_orch
  n = max(1, len(calls))
  return {"reward": total, "R_atomic": atomic.reward, "R_orch": r_orch,
          "name": sum(atomic.name) / n, "structure": sum(atomic.structure) / n,
          "values": sum(atomic.values) / n, "semantic": sum(atomic.semantic) / n,
          "success": success, "turn_accuracy": sum(turns) / len(turns) if turns else 0.0}


def _aligned_pairs(calls, pairs) -> list[tuple[Any, Any]]:
  """Per call, (call, its response or None): the pairs matched back by identity."""
  by_id = {id(c): r for c, r in pairs}
  return [(c, by_id.get(id(c))) for c in calls]


def extract_calls_and_responses(text: str) -> tuple[list[Any], list[tuple[Any, Any]]]:
  """The authors' transcript parser: every <tool_call> body and <tool_response> body is
  json-decoded; each call is paired with the next unused response after it (a call whose JSON
  fails still takes its response); calls and pairs with undecodable (or null) JSON are
  dropped."""
  def parse(m):
    try:
      return json.loads(m.group(1).strip()), True
    except ValueError:
      return None, False

  calls = [(m.start(), *parse(m)) for m in _CALL.finditer(text)]
  responses = [(m.start(), *parse(m)) for m in _RESPONSE.finditer(text)]
  used: set[int] = set()
  pairs = []
  for pos, data, ok in calls:
    for j, (rpos, rdata, rok) in enumerate(responses):
      if rpos > pos and j not in used:
        used.add(j)
        if ok and rok and data is not None and rdata is not None:
          pairs.append((data, rdata))
        break
  return [data for _, data, ok in calls if ok and data is not None], pairs
