"""`FilterSpec`: document filters over taxonomy labels as data (SPEC §2(d); arXiv 2606.07778).

A filter is an expression tree: a leaf tests one dimension's label, `all` (AND) and `any` (OR)
combine children. Its JSON form is the config / results format:

    {"dim": "reasoning_depth", "op": ">=", "value": 3}
    {"dim": "timeliness", "op": "in", "values": [0, 2]}
    {"all": [<filter>, <filter>, ...]}      # AND
    {"any": [<filter>, <filter>, ...]}      # OR

Leaf ops: "in" (label in values), "not_in", ">=", "<=", "==" (labels are the integer classes of
`corpus.LABEL_DIMS`). `evaluate(spec, labels)` gives the keep mask bool [N]; `from_json` checks
every field and names the path of a malformed node (e.g. "filter.all[1].op").
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence, Union

import numpy as np

OPS = ("in", "not_in", ">=", "<=", "==")


@dataclasses.dataclass(frozen=True)
class Leaf:
  """1[label_dim op value(s)]: `values` for "in" / "not_in", `value` for the comparisons."""
  dim: str
  op: str
  value: int | None = None
  values: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class All:
  """AND of the children (a conjunctive compound filter)."""
  children: tuple["FilterSpec", ...]


@dataclasses.dataclass(frozen=True)
class Any_:
  """OR of the children (a disjunctive compound filter)."""
  children: tuple["FilterSpec", ...]


FilterSpec = Union[Leaf, All, Any_]


def to_json(spec: FilterSpec) -> dict[str, Any]:
  """The JSON dict of a filter (module docstring); `from_json(to_json(f)) == f`."""
  if isinstance(spec, Leaf):
    if spec.op in ("in", "not_in"):
      return {"dim": spec.dim, "op": spec.op, "values": list(spec.values)}
    return {"dim": spec.dim, "op": spec.op, "value": spec.value}
  key = "all" if isinstance(spec, All) else "any"
  return {key: [to_json(c) for c in spec.children]}


def _int(x, path: str) -> int:
  if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
    raise ValueError(f"{path}: expected an integer label, got {x!r}")
  return int(x)


def from_json(node: Mapping[str, Any] | str, dims: Mapping[str, int] | None = None,
              path: str = "filter") -> FilterSpec:
  """The filter of a JSON dict (or JSON string). `dims` ({name: num_classes}), if given, is
  checked too: an unknown dimension or an out-of-range label is an error naming its path."""
  if isinstance(node, str):
    node = json.loads(node)
  if not isinstance(node, Mapping):
    raise ValueError(f"{path}: expected a JSON object, got {type(node).__name__}")
  keys = set(node)
  for combinator, cls in (("all", All), ("any", Any_)):
    if combinator in keys:
      if keys != {combinator}:
        raise ValueError(f"{path}: an '{combinator}' node has no other keys, got {sorted(keys)}")
      children = node[combinator]
      if not isinstance(children, Sequence) or isinstance(children, str) or not children:
        raise ValueError(f"{path}.{combinator}: expected a non-empty list of filters")
      return cls(tuple(from_json(c, dims, f"{path}.{combinator}[{i}]")
                       for i, c in enumerate(children)))
  if "dim" not in keys or "op" not in keys:
    raise ValueError(f"{path}: expected {{'dim', 'op', 'value(s)'}} or {{'all': [...]}} or "
                     f"{{'any': [...]}}, got keys {sorted(keys)}")
  dim, op = node["dim"], node["op"]
  if dims is not None and dim not in dims:
    raise ValueError(f"{path}.dim: unknown dimension {dim!r}; expected one of {sorted(dims)}")
  if op not in OPS:
    raise ValueError(f"{path}.op: unknown op {op!r}; expected one of {OPS}")
  if op in ("in", "not_in"):
    if keys != {"dim", "op", "values"}:
      raise ValueError(f"{path}: op {op!r} takes 'values' (a list), got keys {sorted(keys)}")
    raw = node["values"]
    if not isinstance(raw, Sequence) or isinstance(raw, str):
      raise ValueError(f"{path}.values: expected a list of integer labels, got {raw!r}")
    values = tuple(_int(v, f"{path}.values[{i}]") for i, v in enumerate(raw))
    leaf = Leaf(dim, op, values=values)
  else:
    if keys != {"dim", "op", "value"}:
      raise ValueError(f"{path}: op {op!r} takes 'value' (an integer), got keys {sorted(keys)}")
    leaf = Leaf(dim, op, value=_int(node["value"], f"{path}.value"))
  if dims is not None:
    for v in leaf.values or (leaf.value,):
      if not 0 <= v < dims[dim]:
        raise ValueError(f"{path}: label {v} of {dim!r} outside [0, {dims[dim]})")
  return leaf


def evaluate(spec: FilterSpec, labels: Mapping[str, np.ndarray]) -> np.ndarray:
  """bool [N]: which documents the filter keeps, from `labels` ({dim: int [N]})."""
  if isinstance(spec, Leaf):
    if spec.dim not in labels:
      raise ValueError(f"filter on {spec.dim!r}: no labels for it; have {sorted(labels)}")
    x = np.asarray(labels[spec.dim])
    if spec.op == "in":
      return np.isin(x, spec.values)
    if spec.op == "not_in":
      return ~np.isin(x, spec.values)
    return {">=": x >= spec.value, "<=": x <= spec.value, "==": x == spec.value}[spec.op]
  masks = [evaluate(c, labels) for c in spec.children]
  return np.logical_and.reduce(masks) if isinstance(spec, All) else np.logical_or.reduce(masks)


def name(spec: FilterSpec) -> str:
  """A short readable name: 'reasoning_depth>=3', '(code>=1 & timeliness in 0,2)'."""
  if isinstance(spec, Leaf):
    if spec.op in ("in", "not_in"):
      return f"{spec.dim} {spec.op.replace('_', ' ')} {','.join(map(str, spec.values))}"
    return f"{spec.dim}{spec.op}{spec.value}"
  sep = " & " if isinstance(spec, All) else " | "
  return "(" + sep.join(name(c) for c in spec.children) + ")"


def slug(spec: FilterSpec) -> str:
  """`name` as a directory name (letters, digits, '_', '-', '.')."""
  out = name(spec).replace(">=", "_ge").replace("<=", "_le").replace("==", "_eq")
  out = out.replace(" & ", "_AND_").replace(" | ", "_OR_").replace(" ", "_").replace(",", "-")
  return "".join(c for c in out if c.isalnum() or c in "_-.") or "filter"


def compounds(singles: Sequence[FilterSpec]) -> list[FilterSpec]:
  """Pass 2's candidates: the AND and the OR of every pair of `singles` (SPEC step 7.2)."""
  out: list[FilterSpec] = []
  for i in range(len(singles)):
    for j in range(i + 1, len(singles)):
      pair = (singles[i], singles[j])
      out += [All(pair), Any_(pair)]
  return out
