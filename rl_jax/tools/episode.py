"""What one tool-using episode is made of: calls, results, the ledger, and the env protocol.

The rollout loop (`rl_jax.sampling.tool_loop`) drives any `ToolEnv`:

    episode = env.new_episode(item)
    loop:
      segment = <policy generates until a stop string of env.syntax, or EOS>
      call = env.parse_call(segment, episode)        # ToolCall | MalformedCall | None
      if call is None: the segment is the final answer; stop
      result = env.execute(call, episode)            # ToolResult; env records it in the ledger
      if result.malformed is not None: stop          # the task scores the malformed episode
      append env.syntax.format_response(result.text) with loss_mask 0; continue

Model output never raises: a call that cannot be run is a `MalformedCall(reason)`, recorded in
the ledger like any other call, so rewards and metrics can see it. A tool that fails while
running (an exception inside it) is different: the call was well formed, the model gets an
error text back (`ToolResult.error`) and the episode goes on.
"""
from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
  from rl_jax.tools.syntax import CallSyntax


@dataclasses.dataclass(frozen=True)
class ToolCall:
  """A well-formed call. `raw` is the call text as the model wrote it (not compared: two calls
  with the same name and arguments are equal however they were spelled)."""
  name: str
  arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  raw: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class MalformedCall:
  """A call attempt that cannot be run; `reason` says why, for logs and tests."""
  reason: str


@dataclasses.dataclass(frozen=True)
class ToolResult:
  """What `ToolEnv.execute` returns. `text` enters the context (loss_mask 0) unless `malformed`
  is set, which ends the episode. `error` is set when the tool raised: `text` then tells the
  model about the error and the episode continues."""
  text: str
  cost: float
  malformed: MalformedCall | None = None
  error: str | None = None


def arguments_json(arguments: Mapping[str, Any] | None) -> str:
  """The arguments as one JSON string for the ledger (non-JSON values fall back to repr), so a
  ledger can be dumped to jsonl whatever the syntax parsed."""
  if arguments is None:
    return ""
  return json.dumps(dict(arguments), ensure_ascii=False, default=repr)


@dataclasses.dataclass
class LedgerEntry:
  """One call attempt. `malformed` is the reason (None for an executed call); `truncated` is set
  by the rollout loop when the response had to be cut to fit `ToolLoopCfg.tool_tokens` (then
  `response` is the tool's full text and the context held a prefix of it)."""
  name: str
  arguments: str
  response: str
  cost: float
  malformed: str | None = None
  error: str | None = None
  truncated: bool = False


@dataclasses.dataclass
class EpisodeLedger:
  """Every call attempt of an episode, executed or malformed, in order."""
  entries: list[LedgerEntry] = dataclasses.field(default_factory=list)

  def record(self, call: ToolCall | MalformedCall, result: ToolResult) -> LedgerEntry:
    """Appends the entry of `call` and its `result` (malformed iff `result.malformed`)."""
    name = call.name if isinstance(call, ToolCall) else ""
    args = arguments_json(call.arguments) if isinstance(call, ToolCall) else ""
    reason = None if result.malformed is None else result.malformed.reason
    entry = LedgerEntry(name=name, arguments=args, response=result.text, cost=float(result.cost),
                        malformed=reason, error=result.error)
    self.entries.append(entry)
    return entry

  def mark_truncated(self) -> None:
    """Flags the latest entry: its response did not fit the rollout's tool-token budget."""
    if not self.entries:
      raise ValueError("EpisodeLedger.mark_truncated: the ledger has no entry to flag")
    self.entries[-1].truncated = True

  @property
  def executed(self) -> list[LedgerEntry]:
    return [e for e in self.entries if e.malformed is None]

  @property
  def n_calls(self) -> int:
    """Executed calls (a call whose tool raised counts: it ran)."""
    return len(self.executed)

  @property
  def call_costs(self) -> list[float]:
    return [e.cost for e in self.executed]

  @property
  def total_cost(self) -> float:
    return float(sum(self.call_costs))

  @property
  def malformed_reasons(self) -> list[str]:
    return [e.malformed for e in self.entries if e.malformed is not None]

  @property
  def n_malformed(self) -> int:
    return len(self.malformed_reasons)

  @property
  def n_errors(self) -> int:
    return sum(e.error is not None for e in self.executed)

  @property
  def n_truncated(self) -> int:
    return sum(e.truncated for e in self.entries)

  @property
  def used_tool(self) -> bool:
    return self.n_calls > 0


@dataclasses.dataclass
class Episode:
  """One rollout row: the task item, its ledger, and `state` for envs that keep per-episode
  data between calls (e.g. a sandbox handle or a scratch memory)."""
  item: Any
  ledger: EpisodeLedger = dataclasses.field(default_factory=EpisodeLedger)
  state: dict = dataclasses.field(default_factory=dict)


@runtime_checkable
class ToolEnv(Protocol):
  """What the rollout loop needs from a tool environment (see the module docstring).

  `syntax` tells the loop which strings end a policy turn (`stop_strings`) and how a response
  enters the context (`format_response`). `parse_call(text)` without an episode checks the
  syntax and the tool names only; with one (and always in `execute`) it also checks the
  episode's budget and the arguments. (The loop also runs an env without `syntax`: its turns
  end at the configured stop ids and its response texts enter the context as they are.)
  """
  syntax: CallSyntax

  def new_episode(self, item: Any) -> Episode:
    ...

  def parse_call(self, text: str, episode: Episode | None = None
                 ) -> ToolCall | MalformedCall | None:
    ...

  def execute(self, call: ToolCall | MalformedCall, episode: Episode) -> ToolResult:
    ...
