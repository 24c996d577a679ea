"""FilterSpec: evaluation against hand-built cases, JSON round trip, errors naming the path."""
import json

import numpy as np
import pytest

from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation import filters as F

# Six documents, labels written out by hand.
LABELS = {"reasoning_depth": np.array([0, 1, 2, 3, 4, 4]),
          "code": np.array([0, 2, 1, 0, 2, 0]),
          "timeliness": np.array([3, 0, 1, 2, 3, 0])}


@pytest.mark.parametrize("spec, expected", [
    ({"dim": "reasoning_depth", "op": ">=", "value": 3}, [0, 0, 0, 1, 1, 1]),
    ({"dim": "reasoning_depth", "op": "<=", "value": 1}, [1, 1, 0, 0, 0, 0]),
    ({"dim": "code", "op": "==", "value": 2}, [0, 1, 0, 0, 1, 0]),
    ({"dim": "timeliness", "op": "in", "values": [0, 2]}, [0, 1, 0, 1, 0, 1]),
    ({"dim": "timeliness", "op": "not_in", "values": [3]}, [0, 1, 1, 1, 0, 1]),
    ({"all": [{"dim": "reasoning_depth", "op": ">=", "value": 3},
              {"dim": "code", "op": ">=", "value": 1}]}, [0, 0, 0, 0, 1, 0]),
    ({"any": [{"dim": "reasoning_depth", "op": ">=", "value": 4},
              {"dim": "code", "op": "==", "value": 2}]}, [0, 1, 0, 0, 1, 1]),
    # (depth >= 3 AND not stale) OR code == 1
    ({"any": [{"all": [{"dim": "reasoning_depth", "op": ">=", "value": 3},
                       {"dim": "timeliness", "op": "not_in", "values": [3]}]},
              {"dim": "code", "op": "==", "value": 1}]}, [0, 0, 1, 1, 0, 1]),
])
def test_evaluate_hand_built(spec, expected):
  f = F.from_json(spec)
  np.testing.assert_array_equal(F.evaluate(f, LABELS), np.asarray(expected, bool))
  # JSON round trip: dict -> spec -> JSON text -> spec, equal and evaluating the same.
  again = F.from_json(json.dumps(F.to_json(f)))
  assert again == f and F.to_json(again) == spec
  np.testing.assert_array_equal(F.evaluate(again, LABELS), np.asarray(expected, bool))


def test_compounds_and_names():
  a, b, c = (F.Leaf("code", ">=", 1), F.Leaf("reasoning_depth", ">=", 3),
             F.Leaf("timeliness", "in", values=(0,)))
  pairs = F.compounds([a, b, c])
  assert len(pairs) == 6
  assert F.All((a, b)) in pairs and F.Any_((b, c)) in pairs
  assert F.name(F.All((a, c))) == "(code>=1 & timeliness in 0)"
  assert F.slug(F.Any_((a, b))) == "(code_ge1_OR_reasoning_depth_ge3)".replace("(", "").replace(")", "")


@pytest.mark.parametrize("spec, message", [
    ({"dim": "code", "op": "~", "value": 1}, r"filter\.op: unknown op '~'"),
    ({"dim": "code", "op": ">=", "values": [1]}, r"filter: op '>=' takes 'value'"),
    ({"dim": "code", "op": "in", "values": 1}, r"filter\.values: expected a list"),
    ({"all": [{"dim": "code", "op": ">=", "value": 1}, {"dim": "cod", "op": ">=", "value": 1}]},
     r"filter\.all\[1\]\.dim: unknown dimension 'cod'"),
    ({"any": []}, r"filter\.any: expected a non-empty list"),
    ({"dim": "code", "op": ">=", "value": 7}, r"filter: label 7 of 'code' outside \[0, 3\)"),
    ({"dim": "code", "op": ">=", "value": "1"}, r"filter\.value: expected an integer"),
    ({"all": [{"dim": "code", "op": ">=", "value": 1}], "any": []}, r"no other keys"),
])
def test_malformed_filters_name_the_path(spec, message):
  with pytest.raises(ValueError, match=message):
    F.from_json(spec, corpus_lib.LABEL_DIMS)
