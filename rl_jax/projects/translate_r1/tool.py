"""The translate tool of the cipher world and its cost accounting (docs/translate_r1.md).

`TranslateToolEnv` is one `rl_jax.tools.ToolEnv` (the generic protocol, ledger and rollout loop
live in `rl_jax.tools` and `rl_jax.sampling.tool_loop`), with its own call syntax,
"cipher_translate". One multi-turn episode:

    episode = env.new_episode(item)                       # prompt = item.text
    loop:
      segment = <generate until TOOL_CALL_CLOSE or EOS>
      call = env.parse_call(segment, episode)             # ToolCall | MalformedCall | None
      if call is None: the segment is the final answer; stop
      result = env.execute(call, episode)                 # ToolResult; records the ledger
      if result.malformed is not None: stop (reward = cfg.malformed_reward)
      append result.text with loss_mask = 0; continue
    score = env.score(final_segment, episode)             # reward, correct, cost, translated

Syntax "cipher_translate" (tags are single special tokens; the env writes them separated by
spaces; a span is `ToolCall.arguments["span"]`, absent for the whole prompt):

    model:        <tool_call> translate </tool_call>              translate the whole prompt
                  <tool_call> translate w1 w2 ... </tool_call>    translate that span of the prompt
    environment:  <tool_response> english text </tool_response>
    answer:       <answer> 42 </answer>             (`rl_jax.projects.translate_r1.world`)

Text before "<tool_call>" is allowed (free reasoning). Malformed calls -- a stray close tag, an
unclosed tag, an empty or unknown tool name, a span not found in the prompt, text after the close
tag, a model-written "<tool_response>", or a call beyond `max_calls` -- become
`MalformedCall(reason)`
and never raise: `execute` records them in the ledger and the episode scores `malformed_reward`.
The env writes the response tags itself (SFT demonstrations use `ToolResult.text` as is), so the
syntax's `format_response` returns the text unchanged.

Cost of a successful call (configurable, docs/translate_r1.md):
    per_call:   unit_cost
    per_token:  token_cost * count_tokens(translated text)    (default count: whitespace words)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from rl_jax.projects.translate_r1 import domains as cipher_domains
from rl_jax.projects.translate_r1.world import BASE_LANG, CipherWorld, Item, extract_answer
from rl_jax.tools.episode import Episode, EpisodeLedger, MalformedCall, ToolCall, ToolResult
from rl_jax.tools.syntax import TaggedCallSyntax, register_syntax

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"
TRANSLATE = "translate"
SPECIAL_TOKENS = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE)
COST_MODES = ("per_call", "per_token")


def call_span(call: ToolCall) -> str | None:
  """The prompt span a translate call names; None means the whole prompt."""
  return call.arguments.get("span")


@register_syntax("cipher_translate")
@dataclasses.dataclass(frozen=True)
class TranslateCallSyntax(TaggedCallSyntax):
  """`<tool_call> name [w1 w2 ...] </tool_call>`: the first word is the tool, the rest the span.

  Purely syntactic (any name parses; the env rejects unknown tools). `format_response` is the
  identity: the translate env already writes `<tool_response> ... </tool_response>` into its
  result."""
  stop_strings: tuple[str, ...] = (TOOL_CALL_CLOSE,)

  def parse_body(self, body: str, raw: str) -> ToolCall | MalformedCall:
    words = body.split()
    if not words:
      return MalformedCall("empty tool call")
    arguments = {"span": " ".join(words[1:])} if len(words) > 1 else {}
    return ToolCall(words[0], arguments, raw=raw)

  def format_call(self, name: str, arguments: Mapping[str, Any]) -> str:
    span = arguments.get("span")
    return " ".join([TOOL_CALL_OPEN, name] + ([span] if span else []) + [TOOL_CALL_CLOSE])

  def format_response(self, text: str) -> str:
    return text


@runtime_checkable
class Translator(Protocol):
  def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
    ...


class OracleCipherTranslator:
  """Exact translator of a `CipherWorld`: inverse cipher into English, then cipher into `tgt`."""

  def __init__(self, world: CipherWorld):
    self.world = world

  def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
    out = []
    for text in texts:
      english = text if src == BASE_LANG else self.world.decode(text, src)
      out.append(english if tgt == BASE_LANG else self.world.encode(english, tgt))
    return out


def count_words(text: str) -> int:
  return len(text.split())


@dataclasses.dataclass(frozen=True)
class TranslateToolCfg:
  cost_mode: str = "per_call"
  unit_cost: float = 1.0      # cost of one call in per_call mode
  token_cost: float = 0.02    # cost per token of the translated text in per_token mode
  max_calls: int = 1          # calls per episode; one more is malformed
  malformed_reward: float = 0.0
  target_lang: str = BASE_LANG

  def __post_init__(self):
    if self.cost_mode not in COST_MODES:
      raise ValueError(f"TranslateToolCfg.cost_mode must be one of {COST_MODES}, "
                       f"got {self.cost_mode!r}")
    if self.max_calls < 0:
      raise ValueError(f"TranslateToolCfg.max_calls must be >= 0, got {self.max_calls}")
    if self.unit_cost < 0 or self.token_cost < 0:
      raise ValueError(f"TranslateToolCfg costs must be >= 0, got unit_cost={self.unit_cost}, "
                       f"token_cost={self.token_cost}")


@dataclasses.dataclass(frozen=True)
class EpisodeScore:
  """Per-rollout quantities the gate consumes (`correct_B`, `translated_B`, `cost_B`)."""
  reward: float
  correct: bool
  cost: float
  translated: bool
  n_calls: int
  malformed: bool


def _contains_span(text: str, span: str) -> bool:
  words, sub = text.split(), span.split()
  return any(words[i:i + len(sub)] == sub for i in range(len(words) - len(sub) + 1))


def is_correct(answer_text: str, item: Item) -> bool:
  """Exact numeric match: the last "<answer> n </answer>" after the last tool response must be a
  digit string with int(n) == int(item.answer) (so "07" matches "7"; "7.0" and "seven" do not)."""
  cut = answer_text.rfind(TOOL_RESPONSE_CLOSE)
  got = extract_answer(answer_text if cut < 0 else answer_text[cut + len(TOOL_RESPONSE_CLOSE):])
  return got is not None and cipher_domains.is_number(got) and int(got) == int(item.answer)


def score_episode(answer_text: str, item: Item, ledger: EpisodeLedger, *,
                  malformed_reward: float = 0.0) -> EpisodeScore:
  """Base reward r_i = 1[correct] (docs/translate_r1.md); `malformed_reward` if any call was
  malformed. The cost is reported, not subtracted: the gate charges it (`gated_gspo`)."""
  malformed = ledger.n_malformed > 0
  correct = (not malformed) and is_correct(answer_text, item)
  reward = malformed_reward if malformed else float(correct)
  return EpisodeScore(reward=reward, correct=correct, cost=ledger.total_cost,
                      translated=ledger.used_tool, n_calls=ledger.n_calls, malformed=malformed)


def episode_reward(answer_text: str, item: Item, ledger: EpisodeLedger, *,
                   malformed_reward: float = 0.0) -> float:
  return score_episode(answer_text, item, ledger, malformed_reward=malformed_reward).reward


class TranslateToolEnv:
  """The translate tool over a `Translator`, with the cost model of `TranslateToolCfg`."""

  def __init__(self, translator: Translator, cfg: TranslateToolCfg = TranslateToolCfg(), *,
               count_tokens: Callable[[str], int] = count_words):
    self.translator = translator
    self.cfg = cfg
    self.count_tokens = count_tokens
    self.syntax = TranslateCallSyntax()

  def new_episode(self, item: Item) -> Episode:
    return Episode(item)

  def call_cost(self, translated_text: str) -> float:
    if self.cfg.cost_mode == "per_call":
      return self.cfg.unit_cost
    return self.cfg.token_cost * self.count_tokens(translated_text)

  def full_translation_cost(self, item: Item) -> float:
    """Cost of one whole-prompt translation: the always-translate
    normaliser (docs/translate_r1.md)."""
    src = self.translator.translate([item.text], item.lang, self.cfg.target_lang)[0]
    return self.call_cost(src)

  def _check(self, call: ToolCall, episode: Episode | None) -> MalformedCall | None:
    """Why `call` cannot run: an unknown tool or argument always; with `episode`, also a spent
    call budget or a span that is not part of the prompt."""
    if call.name != TRANSLATE:
      return MalformedCall(f"unknown tool {call.name!r}; known tools: [{TRANSLATE!r}]")
    extra = sorted(set(call.arguments) - {"span"})
    if extra or not isinstance(call_span(call), (str, type(None))):
      return MalformedCall(f"bad arguments: expected only a string 'span', got "
                           f"{dict(call.arguments)!r}")
    if episode is None:
      return None
    if episode.ledger.n_calls >= self.cfg.max_calls:
      return MalformedCall(f"too many calls: max_calls={self.cfg.max_calls} already used")
    span = call_span(call)
    if span is not None and not _contains_span(episode.item.text, span):
      return MalformedCall(f"bad arguments: span {span!r} is not a contiguous part of "
                           f"the prompt")
    return None

  def parse_call(self, text: str, episode: Episode | None = None
                 ) -> ToolCall | MalformedCall | None:
    """Reads the segment generated since the last turn. None means no call (an answer).

    With `episode`, also checks `max_calls` and that a span occurs in the prompt.
    """
    call = self.syntax.parse(text)
    if isinstance(call, ToolCall):
      return self._check(call, episode) or call
    return call

  def execute(self, call: ToolCall | MalformedCall, episode: Episode) -> ToolResult:
    """Runs a call and records it in `episode.ledger`. A `MalformedCall` (or a call that fails
    the episode checks, if `parse_call` was given no episode) is recorded as malformed and
    returned in `ToolResult.malformed` with empty text and zero cost."""
    bad = call if isinstance(call, MalformedCall) else self._check(call, episode)
    if bad is not None:
      result = ToolResult(text="", cost=0.0, malformed=bad)
      episode.ledger.record(call, result)
      return result
    item = episode.item
    span = call_span(call)
    source = item.text if span is None else span
    translated = self.translator.translate([source], item.lang, self.cfg.target_lang)[0]
    cost = self.call_cost(translated)
    result = ToolResult(text=f"{TOOL_RESPONSE_OPEN} {translated} {TOOL_RESPONSE_CLOSE}", cost=cost)
    episode.ledger.record(call, result)
    return result

  def score(self, answer_text: str, episode: Episode) -> EpisodeScore:
    return score_episode(answer_text, episode.item, episode.ledger,
                         malformed_reward=self.cfg.malformed_reward)
