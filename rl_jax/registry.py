"""Named registries of the training loop's parts (stages, prompt sources, rollouts, scorers,
advantages, tasks, evaluators, reports).

A part is added by a new module that registers a factory under a name, plus a config value
naming it; the loop never changes (docs/architecture.md). A config selects a part with a dict
`{"name": ..., **kwargs}`; `Registry.build` checks the kwargs against the factory's signature,
so a misspelt key is an error that names the part and the valid keys.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, Mapping, TypeVar

T = TypeVar("T", bound=Callable[..., Any])

# Arguments every factory of a registry may receive from the loop rather than from the config
# (e.g. the run context); they are not config keys.
_CONTEXT_ARGS = ("ctx", "stage", "section", "exp", "seed", "data_dir")


class Registry(Generic[T]):
  """name -> factory, with errors that list the valid names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator: `@REGISTRY.register("name")`. Registering a name twice is an error."""
    def decorator(factory: T) -> T:
      if name in self._entries and self._entries[name] is not factory:
        raise ValueError(f"{self.kind} {name!r} is already registered "
                         f"({self._entries[name].__module__})")
      self._entries[name] = factory
      return factory
    return decorator

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise ValueError(f"unknown {self.kind} {name!r}; registered: {self.names()} (a project's "
                       "parts register when its module is imported: list it in config.imports)")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def check_kwargs(self, name: str, kwargs: Mapping[str, Any], where: str) -> None:
    """Raises naming `where` (the config path) if a kwarg is not a parameter of the factory."""
    params = inspect.signature(self.get(name)).parameters
    # `**kwargs` takes any key; `**_` (extras the factory ignores) takes none from the config.
    if any(p.kind == p.VAR_KEYWORD and p.name != "_" for p in params.values()):
      return
    params = {k: p for k, p in params.items() if p.kind != p.VAR_KEYWORD}
    valid = sorted(k for k in params if k not in _CONTEXT_ARGS)
    unknown = sorted(k for k in kwargs if k not in params or k in _CONTEXT_ARGS)
    if unknown:
      raise ValueError(f"unknown config key(s) {where}.{unknown} for {self.kind} {name!r}; "
                       f"valid: {valid}")

  def build(self, spec: Mapping[str, Any], where: str, **context) -> Any:
    """Calls the factory named by spec["name"] with the other keys of spec and `context`."""
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if name is None:
      raise ValueError(f"config {where} needs a 'name' (one of {self.names()})")
    self.check_kwargs(name, kwargs, where)
    return self.get(name)(**context, **kwargs)
