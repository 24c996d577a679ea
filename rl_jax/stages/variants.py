"""Stage variants of one configured section: `rl.sweep` / `preference.sweep` combinations and a
supervised section's `then` stages (docs/architecture.md). Each is (stage name, overrides,
section with the overrides applied); `rl_jax.stages.plan` turns them into the run's stages."""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping


def _set_path(section, path: tuple[str, ...], value):
  """section with the field at `path` (dataclass fields, then dict keys) replaced."""
  head, rest = path[0], path[1:]
  if dataclasses.is_dataclass(section):
    if head not in {f.name for f in dataclasses.fields(section)}:
      raise KeyError(head)
    current = getattr(section, head)
    return dataclasses.replace(section, **{head: _set_path(current, rest, value) if rest
                                           else value})
  if isinstance(section, Mapping):
    if rest and head not in section:
      raise KeyError(head)
    out = dict(section)
    out[head] = _set_path(section[head], rest, value) if rest else value
    return out
  raise KeyError(head)


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
  for key, value in tree.items():
    if isinstance(value, Mapping):
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def sweep_variants(section, kind: str = "rl") -> list[tuple[str, dict[str, Any], Any]]:
  """(stage name, {path: value}, section) per combination of `section.sweep` (product, in
  order), for the stage kinds with a sweep (rl, preference).

  The name lists the swept values ("rl_gate=none_lam=0.1"); no sweep gives [(kind, {}, section)]."""
  if not section.sweep:
    return [(kind, {}, section)]
  leaves = list(_leaves(section.sweep))
  for path, values in leaves:
    if not isinstance(values, (tuple, list)) or not values:
      raise ValueError(f"config {kind}.sweep.{'.'.join(path)} must be a non-empty tuple of "
                       f"values, got {values!r}")
  out = []
  base = dataclasses.replace(section, sweep={})
  for combo in itertools.product(*(values for _, values in leaves)):
    variant = base
    overrides = {}
    for (path, _), value in zip(leaves, combo):
      try:
        variant = _set_path(variant, path, value)
      except KeyError as e:
        raise ValueError(f"config {kind}.sweep.{'.'.join(path)}: {kind} has no field "
                         f"{e.args[0]!r} there") from None
      overrides[".".join(path)] = value
    name = f"{kind}_" + "_".join(f"{p.split('.')[-1]}={v:g}" if isinstance(v, float) else
                                 f"{p.split('.')[-1]}={v}" for p, v in overrides.items())
    out.append((name, overrides, variant))
  return out


def then_stages(section, kind: str) -> list[tuple[str, dict[str, Any], Any]]:
  """(stage name, {field: value}, section) of a supervised section and its `then` stages, in run
  order: first (kind, {}, section without `then`), then ("<kind>_<name>", overrides, section with
  the overrides) per entry."""
  base = dataclasses.replace(section, then=())
  out = [(kind, {}, base)]
  fields = {f.name for f in dataclasses.fields(base)} - {"then"}
  for i, entry in enumerate(section.then):
    entry = dict(entry)
    name = entry.pop("name", None)
    if not isinstance(name, str) or not name:
      raise ValueError(f"config {kind}.then[{i}] needs a non-empty 'name' (the stage is named "
                       f"'{kind}_<name>'), got {name!r}")
    unknown = sorted(set(entry) - fields)
    if unknown:
      raise ValueError(f"config {kind}.then[{i}] ({name!r}): unknown key(s) {unknown}; valid "
                       f"keys: ['name'] + {sorted(fields)}")
    out.append((f"{kind}_{name}", entry, dataclasses.replace(base, **entry)))
  names = [n for n, _, _ in out]
  if len(set(names)) != len(names):
    raise ValueError(f"config {kind}.then: stage names must be distinct, got {names}")
  return out
