"""Generic tool use: the episode protocol, call syntaxes, a function-calling env, statistics.

- `episode`: `ToolCall`, `MalformedCall`, `ToolResult`, `EpisodeLedger`, `Episode`, `ToolEnv`.
- `syntax`: the `CallSyntax` protocol and its registry (`register_syntax`, `get_syntax`).
- `json_syntax`: the Qwen3 / Hermes `<tool_call>{json}</tool_call>` convention ("json",
  "json_chat").
- `function_env`: `FunctionToolEnv`, a `ToolEnv` over Python functions.
- `scoring`: per-row `tool/*` arrays from the ledgers, and the answer segment.

The rollout loop over any `ToolEnv` is `rl_jax.sampling.tool_loop`; a project may bring its own
env and register its own call syntax.
"""
from rl_jax.tools.episode import (Episode, EpisodeLedger, LedgerEntry, MalformedCall, ToolCall,
                                  ToolEnv, ToolResult)
from rl_jax.tools.syntax import (CallSyntax, get_syntax, register_syntax, resolve_syntax,
                                 syntax_names)
from rl_jax.tools.json_syntax import JsonCallSyntax
from rl_jax.tools.function_env import FunctionToolEnv, Tool
from rl_jax.tools.scoring import answer_text, episode_extras

__all__ = [
    "CallSyntax", "Episode", "EpisodeLedger", "FunctionToolEnv", "JsonCallSyntax", "LedgerEntry",
    "MalformedCall", "Tool", "ToolCall", "ToolEnv", "ToolResult", "answer_text",
    "episode_extras", "get_syntax", "register_syntax", "resolve_syntax", "syntax_names",
]
