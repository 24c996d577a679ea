"""The graduated reward against scores computed by hand from the formulas of the paper's code
(arXiv 2603.24709, `compute_score`; docs/tool_orchestration.md):
  ast(c) = 0.33 [name] + 0.33 |P_c & P_gt| / |P_gt| * type-compatible fraction + 0.34 [values]
  R_atomic = mean_c (ast(c) + sem(c)) / 2;  R_orch = matched steps (dependency order) / steps
  R = 0.5 R_atomic + 0.5 R_orch.
Every expected number below is written out by hand in the comment next to it."""
import json

import pytest

from rl_jax.projects.tool_orchestration import reward as rw

# hotel_stars-like ground truth: destination -> hotels (needs step 0) -> details (needs step 1)
GT = [rw.GroundTruthStep("search_destination", {"query": "rome"}),
      rw.GroundTruthStep("search_hotels", {"dest_id": "D2", "day": 2}, (0,)),
      rw.GroundTruthStep("hotel_details", {"hotel_id": "H22"}, (1,))]
OK = {"data": [{"id": "x"}]}
ERR = {"error": "no cached response"}
SD = ("search_destination", {"query": "rome"})
SH = ("search_hotels", {"dest_id": "D2", "day": 2})
HD = ("hotel_details", {"hotel_id": "H22"})


def call(name, args):
  return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def resp(obj):
  return "<tool_response>" + json.dumps(obj) + "</tool_response>"


def chain(*pairs):
  """Each pair is ((name, args), response or None)."""
  return "".join(call(*c) + (resp(r) if r is not None else "") for c, r in pairs) + "<done>"


def scores(text, steps=GT, reward="graduated", atomic_match="first"):
  calls, pairs = rw.extract_calls_and_responses(text)
  return rw.score(calls, pairs, steps, reward=reward, atomic_match=atomic_match)


CASES = {
    # 3 exact calls, each (1 + 1) / 2; all steps in order: 0.5 * 1 + 0.5 * 1.
    "perfect": (chain((SD, OK), (SH, OK), (HD, OK)), 1.0, 1.0, 1.0),
    # name only: search_hotels {} -> ast 0.33, sem 1 -> 0.665; no step matches (its dependency
    # step 0 is missing): 0.5 * 0.665 = 0.3325.
    "name_only": (chain((("search_hotels", {}), OK)), 0.3325, 0.665, 0.0),
    # partial params: SD exact (1); SH without day: 0.33 + 0.33 * 1/2 + 0 = 0.495, error
    # response sem 0 -> 0.2475; R_atomic = (1 + 0.2475) / 2 = 0.62375; steps 0, 1 -> 2/3;
    # 0.311875 + 0.333333 = 0.645208.
    "partial_params": (chain((SD, OK), (("search_hotels", {"dest_id": "D2"}), ERR)),
                       0.645208, 0.62375, 2 / 3),
    # type mismatch: day "2" for 2: structure 0.33 * 1 * 1/2 = 0.165, values 0 (str for int),
    # ast 0.495, sem 1 -> 0.7475; R_atomic (1 + 0.7475) / 2 = 0.87375; R_orch 2/3;
    # 0.436875 + 0.333333 = 0.770208.
    "type_mismatch": (chain((SD, OK), (("search_hotels", {"dest_id": "D2", "day": "2"}), OK)),
                      0.770208, 0.87375, 2 / 3),
    # float for an int: types compatible (structure 0.33) but BFCL's strict check wants an int:
    # ast 0.66, sem 1 -> 0.83; R_atomic (1 + 0.83 + 1) / 3 = 0.943333; R_orch 1;
    # 0.471667 + 0.5 = 0.971667.
    "float_for_int": (chain((SD, OK), (("search_hotels", {"dest_id": "D2", "day": 2.0}), OK),
                            (HD, OK)), 0.971667, 0.943333, 1.0),
    # missing dependency: SH and HD exact (atomic 1) but step 0 never called, so steps 1 and 2
    # cannot match: 0.5 * 1 + 0.5 * 0 = 0.5.
    "missing_dependency": (chain((SH, OK), (HD, OK)), 0.5, 1.0, 0.0),
    # out of order: SH, SD, HD: step 0 at p1; step 1's only match p0 is before its dependency
    # (p1 >= 0): unmatched; step 2's dependency unmatched: R_orch 1/3; 0.5 + 0.166667.
    "out_of_order": (chain((SH, OK), (SD, OK), (HD, OK)), 0.666667, 1.0, 1 / 3),
    # repeated call, first with a wrong value: SD(paris) 0.66 + sem 1 -> 0.83; then the exact
    # chain: R_atomic (0.83 + 3) / 4 = 0.9575; R_orch 1; 0.47875 + 0.5 = 0.97875.
    "repeated_wrong_then_right": (chain((("search_destination", {"query": "paris"}), OK),
                                        (SD, OK), (SH, OK), (HD, OK)), 0.97875, 0.9575, 1.0),
    # the same call twice: the first takes the first response (an error, sem 0) -> 0.5, the
    # second the OK one -> 1; R_atomic (0.5 + 1 + 1 + 1) / 4 = 0.875; R_orch 1; 0.9375.
    "repeated_identical": (chain((SD, ERR), (SD, OK), (SH, OK), (HD, OK)), 0.9375, 0.875, 1.0),
    # no calls: R_atomic 0 by definition, no step matched.
    "no_calls": ("<done>", 0.0, 0.0, 0.0),
    # error responses: last call's response is an error -> (1 + 0) / 2; R_atomic 2.5 / 3;
    # R_orch matches by name: 1; 0.416667 + 0.5 = 0.916667.
    "error_response": (chain((SD, OK), (SH, OK), (HD, ERR)), 0.916667, 2.5 / 3, 1.0),
    # status False and an empty dict are failures too: (1 + 0.5 + 0.5) / 3 = 0.666667;
    # 0.333333 + 0.5 = 0.833333.
    "status_false_and_empty": (chain((SD, OK), (SH, {"status": False}), (HD, {})),
                               0.833333, 2 / 3, 1.0),
    # malformed JSON: the broken call is dropped but takes the response after it; the good SD
    # is paired with the second response: R_atomic 1 (one call); R_orch 1/3; 0.666667.
    "malformed_json": ("<tool_call>\n{\"name\": \"search_destination\", \"arguments\": "
                       "{\"query\": \"rome\"}\n</tool_call>" + resp(OK) + call(*SD) + resp(OK),
                       0.666667, 1.0, 1 / 3),
    # malformed JSON stealing the only response: the good SD has no response (sem 0):
    # R_atomic 0.5; 0.25 + 0.166667 = 0.416667.
    "malformed_json_steals_response": ("<tool_call>\n{broken\n</tool_call>" + call(*SD) +
                                       resp(OK), 0.416667, 0.5, 1 / 3),
    # a function outside the workflow: ast 0, sem 0; R_atomic (1 + 0) / 2; 0.25 + 0.166667.
    "unknown_function": (chain((SD, OK), (("get_weather", {"city": "rome"}), OK)),
                         0.416667, 0.5, 1 / 3),
    # an extra parameter: structure full (shared 1/1, types 1) but the strict check fails:
    # 0.66, sem 1 -> 0.83; 0.415 + 0.166667 = 0.581667.
    "extra_param": (chain((("search_destination", {"query": "rome", "lang": "en"}), OK)),
                    0.581667, 0.83, 1 / 3),
    # BFCL string standardisation: "Rome" equals "rome": exact; 0.5 + 0.166667.
    "string_case": (chain((("search_destination", {"query": "Rome"}), OK)), 0.666667, 1.0,
                    1 / 3),
    # arguments as a JSON string (the OpenAI wire form) are parsed: exact; 0.666667.
    "arguments_as_string": ("<tool_call>\n" + json.dumps(
        {"name": "search_destination", "arguments": json.dumps({"query": "rome"})}) +
        "\n</tool_call>" + resp(OK), 0.666667, 1.0, 1 / 3),
    # a bool for an int: compatible for the structure score (bool is an int in Python, as in
    # the authors' code), rejected by the strict value check: SH 0.66 + 1 -> 0.83;
    # R_atomic (1 + 0.83) / 2 = 0.915; R_orch 2/3; 0.4575 + 0.333333 = 0.790833.
    "bool_for_int": (chain((SD, OK), (("search_hotels", {"dest_id": "D2", "day": True}), OK)),
                     0.790833, 0.915, 2 / 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_graduated_reward_matches_hand_computed(name):
  text, total, atomic, orch = CASES[name]
  s = scores(text)
  assert s["R_atomic"] == pytest.approx(atomic, abs=1e-6), name
  assert s["R_orch"] == pytest.approx(orch, abs=1e-6), name
  assert s["reward"] == pytest.approx(total, abs=1e-6), name


def test_int_for_float_is_exact():
  """A float parameter given as an int: compatible type and BFCL accepts it (2 -> 2.0)."""
  steps = [rw.GroundTruthStep("search_hotels", {"dest_id": "D2", "max_price": 150.0})]
  s = scores(chain((("search_hotels", {"dest_id": "D2", "max_price": 150}), OK)), steps)
  assert (s["reward"], s["success"]) == (1.0, 1.0)
  # 150.5: compatible type, wrong value: ast 0.66, sem 1 -> 0.83; R_orch 1; 0.915.
  s = scores(chain((("search_hotels", {"dest_id": "D2", "max_price": 150.5}), OK)), steps)
  assert s["reward"] == pytest.approx(0.915)


def test_empty_params_rule():
  """Ground truth without params: the full structure score needs a call without params."""
  steps = [rw.GroundTruthStep("list_currencies", {})]
  assert scores(chain((("list_currencies", {}), OK)), steps)["reward"] == pytest.approx(1.0)
  # {"x": 1}: structure 0, values 0: ast 0.33, sem 1 -> 0.665; R_orch 1: 0.8325.
  assert scores(chain((("list_currencies", {"x": 1}), OK)), steps)["reward"] == \
      pytest.approx(0.8325)


def test_atomic_uses_first_step_with_that_function():
  """Two steps call search_airport (origin, destination); every search_airport call is scored
  against the FIRST step's arguments (the authors' lookup): the destination call gets 0.66."""
  steps = [rw.GroundTruthStep("search_airport", {"query": "rome"}),
           rw.GroundTruthStep("search_airport", {"query": "oslo"}),
           rw.GroundTruthStep("search_flights", {"from_id": "A2", "to_id": "A3", "day": 1},
                              (0, 1))]
  text = chain((("search_airport", {"query": "rome"}), OK),
               (("search_airport", {"query": "oslo"}), OK),
               (("search_flights", {"from_id": "A2", "to_id": "A3", "day": 1}), OK))
  s = scores(text, steps)
  # R_atomic (1 + 0.83 + 1) / 3 = 0.943333; R_orch: both airport steps match p0 (name only),
  # flights at p2 after both: 1; 0.471667 + 0.5.
  assert s["R_atomic"] == pytest.approx(0.943333, abs=1e-6)
  assert s["reward"] == pytest.approx(0.971667, abs=1e-6)
  assert s["success"] == 1.0  # the strict walk matches the second step at p1


AIRPORTS = [rw.GroundTruthStep("search_airport", {"query": "rome"}),
            rw.GroundTruthStep("search_airport", {"query": "oslo"}),
            rw.GroundTruthStep("search_flights", {"from_id": "A2", "to_id": "A3", "day": 1},
                               (0, 1))]
ROME, OSLO = ("search_airport", {"query": "rome"}), ("search_airport", {"query": "oslo"})
FLIGHT = ("search_flights", {"from_id": "A2", "to_id": "A3", "day": 1})
ROME_TWICE = ("search_flights", {"from_id": "A2", "to_id": "A2", "day": 1})


def test_first_match_cannot_tell_the_right_chain_from_a_repeated_origin():
  """The authors' lookup gives the correct chain and one that searches the origin twice (then
  books rome -> rome) the same reward; "occurrence" scores the second airport call against
  the second step and separates them."""
  right = chain((ROME, OK), (OSLO, OK), (FLIGHT, OK))
  repeat = chain((ROME, OK), (ROME, OK), (ROME_TWICE, OK))
  # first: right (1 + 0.83 + 1) / 3; repeat: rome twice exact (1, 1), flights with a wrong
  # to_id 0.66 -> (1 + 1 + 0.83) / 3: both R_atomic 0.943333, R_orch 1, R 0.971667.
  assert scores(right, AIRPORTS)["reward"] == pytest.approx(0.971667, abs=1e-6)
  assert scores(repeat, AIRPORTS)["reward"] == pytest.approx(0.971667, abs=1e-6)
  assert (scores(right, AIRPORTS)["success"], scores(repeat, AIRPORTS)["success"]) == (1.0, 0.0)
  # occurrence: right is exact everywhere: R 1. repeat: rome against step 0 (1), rome against
  # step 1 (oslo: name 0.33 + structure 0.33 -> 0.66, sem 1 -> 0.83), flights 0.83;
  # R_atomic (1 + 0.83 + 0.83) / 3 = 0.886667; R = 0.443333 + 0.5 = 0.943333.
  assert scores(right, AIRPORTS, atomic_match="occurrence")["reward"] == pytest.approx(1.0)
  s = scores(repeat, AIRPORTS, atomic_match="occurrence")
  assert s["R_atomic"] == pytest.approx(0.886667, abs=1e-6)
  assert s["reward"] == pytest.approx(0.943333, abs=1e-6)
  # A third airport call (oslo again) is scored against the last airport step: exact.
  extra = chain((ROME, OK), (OSLO, OK), (OSLO, OK), (FLIGHT, OK))
  assert scores(extra, AIRPORTS, atomic_match="occurrence")["R_atomic"] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="atomic_match must be one of"):
    scores(right, AIRPORTS, atomic_match="last")


@pytest.mark.parametrize("name", sorted(CASES))
def test_occurrence_equals_first_when_each_function_occurs_once(name):
  text = CASES[name][0]
  assert scores(text, atomic_match="occurrence") == scores(text)


def test_ablations_and_binary():
  text = CASES["missing_dependency"][0]
  assert scores(text, reward="atomic")["reward"] == 1.0
  assert scores(text, reward="orchestration")["reward"] == 0.0
  assert scores(text, reward="binary")["reward"] == 0.0
  perfect = CASES["perfect"][0]
  assert [scores(perfect, reward=r)["reward"] for r in rw.REWARD_NAMES] == [1.0] * 4
  # Error response on the last step: orchestration (by name) says 1, binary says 0.
  err = CASES["error_response"][0]
  assert scores(err, reward="orchestration")["reward"] == 1.0
  assert scores(err, reward="binary")["reward"] == 0.0
  # turn accuracy: steps 0 and 1 exactly right, step 2's response is an error.
  assert scores(err)["turn_accuracy"] == pytest.approx(2 / 3)


def test_dependency_weight_mode_equals_uniform_with_one_call_per_step():
  calls, _ = rw.extract_calls_and_responses(CASES["out_of_order"][0])
  assert rw.orchestration(calls, GT, "dependency") == rw.orchestration(calls, GT, "uniform")
  with pytest.raises(ValueError, match="weight_mode"):
    rw.orchestration(calls, GT, "steps")


def test_unknown_reward_name():
  with pytest.raises(ValueError, match="reward must be one of"):
    rw.score([], [], GT, reward="dense")


def test_which_rewards_read_the_atomic_match():
  # R_atomic is the only part that depends on the lookup: graduated (0.5) and atomic (1.0) do;
  # R_orch alone (weight 0) and binary (the strict walk) do not.
  assert [rw.reads_atomic_match(r) for r in ("graduated", "atomic", "orchestration", "binary")] \
      == [True, True, False, False]
