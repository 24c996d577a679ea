"""Multi-turn tool rollout: generate until a tool call, run the tool on the host, continue.

    out = tool_rollout(params, items, prompts, env, tokenizer, key, knobs,
                       model_cfg=..., cfg=ToolLoopCfg(...), group_size=G)

Works over any `rl_jax.tools.ToolEnv` (new_episode / parse_call / execute / syntax). One episode
per rollout row; row r belongs to item r // G (the group layout of every advantage function).
A turn ends at `ToolLoopCfg.stop_ids` plus the id of each of `env.syntax.stop_strings` (each must
be one token of the tokenizer); an env without a `syntax` uses `stop_ids` alone and its response
texts as they are.

Turn t (t = 0 .. max_calls) is one call of the jitted `generate` on ALL rows with a left-padded
prompt of the fixed length P_t = P + t (N + R) (conversation so far), so the shapes of a turn
never change and nothing recompiles across steps (rows that have finished still ride along;
their samples are ignored; with `ToolLoopCfg.row_bucket` later turns run only the rows still in
an episode, padded to a bucket of rows). After turn t the host decodes each active row's new
segment and:
  - no tool call                -> the segment is the final answer; the episode ends;
  - malformed call              -> `env.execute` records it; the episode ends (the env scores it
                                   with its configured malformed reward);
  - a call in the last turn     -> the rollout's call budget is spent: recorded as malformed;
  - a valid call                -> `env.execute`; the response text, wrapped by
                                   `env.syntax.format_response`, is tokenized and appended with
                                   loss_mask 0, and the row continues in turn t + 1.
A generation that hits the turn budget N without a stop token is parsed as it is (an unclosed
call is malformed, an unfinished answer is simply scored). Nothing here raises on model output
nor on tool output: a response longer than R tokens is cut to the longest prefix of the tool's
text whose wrapped form fits R tokens (a syntax's closing tags stay, so the policy still sees
where the response ends; an env that writes its own tags into the text, as the translate env
does, loses its close tag), counted in `ToolRollout.truncated_responses_B` and flagged in the
ledger entry. Only a syntax wrapper that alone exceeds R is a configuration error.

The result is ONE slot layout [B, L], L = P + (max_calls + 1) N + max_calls R: slots [0, P) hold
the left-padded prompt (plus an optional forced prefix), the conversation after it is contiguous
and right-padded. loss_mask is 1 exactly on policy-sampled tokens of every turn; `logp_policy`
there is the sampler's log-prob, which equals a teacher-forced pass over the assembled layout
(positions skip padding, so a token sees the same context and positions as when it was sampled).
Tool-response, prompt and forced-prefix tokens carry loss_mask 0 and logp 0, so they never enter
a GSPO sequence ratio s_i = exp(mean_{t: mask} log rho_t) nor the loss.

`forced_prefix` (text) is appended to every prompt before turn 0, e.g. "<answer>" forbids a tool
call (never-translate) and "<tool_call> translate </tool_call>" forces one (always-translate):
when the prefix already parses as a call, turn 0 is not sampled and the call runs directly.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models.config import ModelConfig
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.tokenizers import Tokenizer
from rl_jax.tools.episode import Episode, MalformedCall, ToolEnv
from rl_jax.tools.syntax import CallSyntax
from rl_jax.types import Rollout, SampleKnobs


@dataclasses.dataclass(frozen=True)
class ToolLoopCfg:
  """Static shapes of a multi-turn rollout.

  prompt_len: P, slots of the left-padded prompt (plus forced prefix).
  turn_tokens: N, max tokens the policy writes per turn (stop token included).
  tool_tokens: R, max tokens of one tool response.
  max_calls: tool calls per episode; the loop runs max_calls + 1 policy turns.
  stop_ids: ids that end a turn (EOS and the tool-call close tag).
  pad_id: id of empty slots.
  row_bucket: 0 = every row rides along in every turn; k > 0 = turns after the first generate
    only for the rows still in an episode, padded to a multiple of k rows (a bounded number of
    compiled shapes): when few rows call the tool, later turns cost that much less. The draws
    of a turn depend on which rows share its batch, so the samples differ from row_bucket=0
    (same distribution, still deterministic per key).
  """
  prompt_len: int
  turn_tokens: int
  tool_tokens: int
  max_calls: int = 1
  stop_ids: tuple[int, ...] = ()
  pad_id: int = 0
  row_bucket: int = 0

  def __post_init__(self):
    for name in ("prompt_len", "turn_tokens"):
      if getattr(self, name) < 1:
        raise ValueError(f"ToolLoopCfg.{name} must be >= 1, got {getattr(self, name)}")
    if self.tool_tokens < 0 or self.max_calls < 0 or self.row_bucket < 0:
      raise ValueError(f"ToolLoopCfg.tool_tokens, max_calls and row_bucket must be >= 0, got "
                       f"{self.tool_tokens}, {self.max_calls}, {self.row_bucket}")
    object.__setattr__(self, "stop_ids", tuple(int(i) for i in self.stop_ids))

  def turn_prompt_len(self, turn: int) -> int:
    return self.prompt_len + turn * (self.turn_tokens + self.tool_tokens)

  @property
  def total_len(self) -> int:
    return self.turn_prompt_len(self.max_calls) + self.turn_tokens


@dataclasses.dataclass
class ToolRollout:
  """rollout: the assembled [B, L] layout (prompt_len = P). episodes: one per row (ledgers hold
  the calls and their costs). transcripts: per row, the policy segments and tool responses in
  order, joined by spaces (what `env.score` reads). segments: per row, the policy segments only.
  truncated_responses_B: per row, how many tool responses were cut to `ToolLoopCfg.tool_tokens`.
  """
  rollout: Rollout
  episodes: list[Episode]
  transcripts: list[str]
  segments: list[list[str]]
  truncated_responses_B: np.ndarray


def left_pad(rows: Sequence[Sequence[int]], length: int, pad_id: int, where: str
             ) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded ids and validity [B, length]; a row longer than `length` is an error."""
  tokens = np.full((len(rows), length), pad_id, np.int32)
  valid = np.zeros((len(rows), length), bool)
  for i, ids in enumerate(rows):
    if len(ids) > length:
      raise ValueError(f"{where}: row {i} has {len(ids)} tokens, more than the {length} slots")
    if ids:
      tokens[i, length - len(ids):] = ids
      valid[i, length - len(ids):] = True
  return tokens, valid


def assemble(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
             response_mask: Sequence[Sequence[float]], response_logp: Sequence[Sequence[float]],
             *, prompt_len: int, total_len: int, pad_id: int) -> dict[str, np.ndarray]:
  """The slot layout of whole conversations: prompt left-padded into [0, P), response (all
  turns, tool responses included) contiguous from slot P, right-padded to `total_len`.
  Also used to build SFT demonstrations, so they match rollouts token for token."""
  b = len(prompt_ids)
  tokens_p, valid_p = left_pad(prompt_ids, prompt_len, pad_id, "assemble(prompt)")
  n = total_len - prompt_len
  tokens_r = np.full((b, n), pad_id, np.int32)
  valid_r = np.zeros((b, n), bool)
  mask_r = np.zeros((b, n), np.float32)
  logp_r = np.zeros((b, n), np.float32)
  for i, (ids, m, lp) in enumerate(zip(response_ids, response_mask, response_logp)):
    if len(ids) > n:
      raise ValueError(f"assemble: response {i} has {len(ids)} tokens, more than the {n} "
                       f"response slots (total_len {total_len} - prompt_len {prompt_len})")
    k = len(ids)
    tokens_r[i, :k], valid_r[i, :k] = ids, True
    mask_r[i, :k], logp_r[i, :k] = m, lp
  zeros = np.zeros((b, prompt_len), np.float32)
  return dict(tokens_BxL=np.concatenate([tokens_p, tokens_r], 1),
              valid_BxL=np.concatenate([valid_p, valid_r], 1),
              loss_mask_BxL=np.concatenate([zeros, mask_r], 1),
              logp_BxL=np.concatenate([zeros, logp_r], 1))


def _turn_rows(active_B: np.ndarray, turn: int, row_bucket: int) -> np.ndarray:
  """Rollout rows that generate in this turn: all of them, or (row_bucket > 0, after the first
  turn) the active ones first, padded with finished rows to a multiple of row_bucket."""
  num_rows = len(active_B)
  if turn == 0 or row_bucket == 0:
    return np.arange(num_rows)
  live = np.flatnonzero(active_B)
  size = min(-(-len(live) // row_bucket) * row_bucket, num_rows)
  return np.concatenate([live, np.flatnonzero(~active_B)[:size - len(live)]])


def _encode(tokenizer: Tokenizer, text: str) -> list[int]:
  return list(tokenizer.encode(text)) if text else []


def turn_stop_ids(stop_ids: Sequence[int], syntax: CallSyntax | None, tokenizer: Tokenizer
                  ) -> tuple[int, ...]:
  """`stop_ids` plus the id of each stop string of `syntax` not already among them (order kept,
  so a config that lists them already compiles the same `generate`). The sampler stops on ids,
  so a stop string that is not one token cannot end a turn: a ValueError naming it."""
  out = [int(i) for i in stop_ids]
  for text in (syntax.stop_strings if syntax is not None else ()):
    try:
      i = int(tokenizer.token_id(text))
    except (ValueError, KeyError) as e:
      raise ValueError(f"tool_rollout: stop string {text!r} of the env's syntax is not a single "
                       f"token of the tokenizer ({e}); add it as a special token") from None
    if i not in out:
      out.append(i)
  return tuple(out)


def fit_response(text: str, syntax: CallSyntax | None, tokenizer: Tokenizer, max_tokens: int
                 ) -> tuple[list[int], str, bool]:
  """(ids, context text, truncated) of a tool response wrapped by `syntax.format_response`.

  A response over `max_tokens` keeps the longest prefix of the tool's text (in tokens) whose
  wrapped form fits, found by bisection (each probe re-encodes, so merges across the wrapper are
  measured, never guessed). Without a syntax the ids are simply cut."""
  wrap = syntax.format_response if syntax is not None else (lambda t: t)
  full = wrap(text)
  ids = _encode(tokenizer, full)
  if len(ids) <= max_tokens:
    return ids, full, False
  raw = _encode(tokenizer, text)
  if syntax is None:
    return raw[:max_tokens], tokenizer.decode(raw[:max_tokens]), True

  def wrapped(k: int) -> tuple[list[int], str]:
    shown = wrap(tokenizer.decode(raw[:k]))
    return _encode(tokenizer, shown), shown

  lo, hi = 0, len(raw)  # invariant: the answer is in [lo, hi]
  while lo < hi:
    mid = (lo + hi + 1) // 2
    lo, hi = (mid, hi) if len(wrapped(mid)[0]) <= max_tokens else (lo, mid - 1)
  ids, shown = wrapped(lo)
  if len(ids) > max_tokens:
    raise ValueError(f"tool_rollout: the response wrapper alone takes {len(ids)} tokens, more "
                     f"than ToolLoopCfg.tool_tokens={max_tokens}: {shown[:60]!r}; raise "
                     "tool_tokens")
  return ids, shown, True


def tool_rollout(params: Any, items: Sequence[Any], prompts: Sequence[str], env: ToolEnv,
                 tokenizer: Tokenizer, key: jax.Array, knobs: SampleKnobs, *,
                 model_cfg: ModelConfig, cfg: ToolLoopCfg, group_size: int = 1,
                 forced_prefix: str | Sequence[str] = "") -> ToolRollout:
  """Samples `group_size` multi-turn episodes per item (see the module docstring).

  Args:
    items: what `env.new_episode` takes, one per prompt.
    prompts: prompt text per item.
    key: PRNG key; turn t samples with `fold_in(key, t)`.
    forced_prefix: text forced at the start of the first policy segment (loss_mask 0): one
      string for every row, or one per row (len(items) * group_size; row r belongs to item
      r // group_size), e.g. "<answer>" in a few rows per group to force native answers. A
      per-row prefix must not be a tool call.
  """
  if len(items) != len(prompts):
    raise ValueError(f"tool_rollout: {len(items)} items but {len(prompts)} prompts")
  if group_size < 1:
    raise ValueError(f"tool_rollout: group_size must be >= 1, got {group_size}")
  num_rows = len(items) * group_size
  per_row = not isinstance(forced_prefix, str)
  prefixes = list(forced_prefix) if per_row else [forced_prefix] * num_rows
  if len(prefixes) != num_rows:
    raise ValueError(f"tool_rollout: forced_prefix has {len(prefixes)} entries, expected one per "
                     f"row ({len(items)} items x group_size {group_size} = {num_rows})")
  if per_row:
    for r, prefix in enumerate(prefixes):
      if prefix and env.parse_call(prefix) is not None:
        raise ValueError(f"tool_rollout: per-row forced_prefix {prefix!r} (row {r}) is a tool "
                         "call; force a call with one forced_prefix string for every row")
    skip_first = False
  else:  # one prefix for all rows; a forced call skips the first generation
    prefix_call = env.parse_call(forced_prefix) if forced_prefix else None
    skip_first = prefix_call is not None and not isinstance(prefix_call, MalformedCall)
  # Each prompt and each distinct prefix is encoded once (rows of a group share the prompt).
  text_ids = [_encode(tokenizer, text) for text in prompts]
  prefix_ids = {p: _encode(tokenizer, p) for p in set(prefixes)}
  prompt_ids = []
  for r in range(num_rows):
    ids = text_ids[r // group_size] + prefix_ids[prefixes[r]]
    if len(ids) > cfg.prompt_len:
      raise ValueError(f"tool_rollout: prompt {r // group_size} (+ forced prefix) has {len(ids)} "
                       f"tokens, more than ToolLoopCfg.prompt_len={cfg.prompt_len}: "
                       f"{prompts[r // group_size][:60]!r}")
    prompt_ids.append(ids)
  episodes = [env.new_episode(items[r // group_size]) for r in range(num_rows)]
  resp_ids = [[] for _ in range(num_rows)]
  resp_mask = [[] for _ in range(num_rows)]
  resp_logp = [[] for _ in range(num_rows)]
  resp_sample = [[] for _ in range(num_rows)]
  transcripts = [[] for _ in range(num_rows)]
  segments = [[] for _ in range(num_rows)]
  active = np.ones(num_rows, bool)
  truncated = np.zeros(num_rows, bool)
  cut_responses = np.zeros(num_rows, np.int32)
  syntax = getattr(env, "syntax", None)
  gen_cfg = GenerateCfg(max_new_tokens=cfg.turn_tokens, group_size=1,
                        stop_ids=turn_stop_ids(cfg.stop_ids, syntax, tokenizer), pad_id=cfg.pad_id)

  for turn in range(cfg.max_calls + 1):
    if not active.any():
      break
    texts = [""] * num_rows
    if turn == 0 and skip_first:
      texts = [forced_prefix] * num_rows
    else:
      p_t = cfg.turn_prompt_len(turn)
      gen_rows = _turn_rows(active, turn, cfg.row_bucket)
      tokens, valid = left_pad([prompt_ids[r] + resp_ids[r] for r in gen_rows], p_t, cfg.pad_id,
                               f"tool_rollout(turn {turn})")
      out = jax.device_get(generate(params, jnp.asarray(tokens), jnp.asarray(valid),
                                    jax.random.fold_in(key, turn), knobs, model_cfg=model_cfg,
                                    cfg=gen_cfg))
      new_mask = np.asarray(out.loss_mask_BxL)[:, p_t:] > 0
      new_tokens = np.asarray(out.tokens_BxL)[:, p_t:]
      new_logp = np.asarray(out.logp_policy_BxL)[:, p_t:]
      new_sample = np.asarray(out.logp_sample_BxL)[:, p_t:]
      for k, r in enumerate(gen_rows):  # k: row of this turn's batch, r: rollout row
        if not active[r]:
          continue
        ids = [int(t) for t in new_tokens[k][new_mask[k]]]
        resp_ids[r] += ids
        resp_mask[r] += [1.0] * len(ids)
        resp_logp[r] += [float(x) for x in new_logp[k][new_mask[k]]]
        resp_sample[r] += [float(x) for x in new_sample[k][new_mask[k]]]
        truncated[r] = bool(out.truncated_B[k])
        texts[r] = (prefixes[r] + " " if turn == 0 and prefixes[r] else "") + \
            tokenizer.decode(ids)
    for r in np.flatnonzero(active):
      episode = episodes[r]
      segments[r].append(texts[r])
      transcripts[r].append(texts[r])
      call = env.parse_call(texts[r], episode)
      if call is None:
        active[r] = False
        continue
      if turn == cfg.max_calls and not isinstance(call, MalformedCall):
        call = MalformedCall(f"tool-call budget of the rollout spent (max_calls={cfg.max_calls})")
      result = env.execute(call, episode)
      if result.malformed is not None:
        active[r] = False
        continue
      ids, shown, cut = fit_response(result.text, syntax, tokenizer, cfg.tool_tokens)
      if cut:
        cut_responses[r] += 1
        if episode.ledger.entries:
          episode.ledger.mark_truncated()
      resp_ids[r] += ids
      resp_mask[r] += [0.0] * len(ids)
      resp_logp[r] += [0.0] * len(ids)
      resp_sample[r] += [0.0] * len(ids)
      transcripts[r].append(shown)

  arrays = assemble(prompt_ids, resp_ids, resp_mask, resp_logp, prompt_len=cfg.prompt_len,
                    total_len=cfg.total_len, pad_id=cfg.pad_id)
  sample = assemble(prompt_ids, resp_ids, resp_mask, resp_sample, prompt_len=cfg.prompt_len,
                    total_len=cfg.total_len, pad_id=cfg.pad_id)["logp_BxL"]
  mask = arrays["loss_mask_BxL"]
  rollout = Rollout(tokens_BxL=jnp.asarray(arrays["tokens_BxL"]),
                    valid_BxL=jnp.asarray(arrays["valid_BxL"]),
                    loss_mask_BxL=jnp.asarray(mask), logp_sample_BxL=jnp.asarray(sample),
                    logp_policy_BxL=jnp.asarray(arrays["logp_BxL"]),
                    response_len_B=jnp.asarray(mask.sum(1).astype(np.int32)),
                    truncated_B=jnp.asarray(truncated), prompt_len=cfg.prompt_len)
  return ToolRollout(rollout=rollout, episodes=episodes,
                     transcripts=[" ".join(t) for t in transcripts], segments=segments,
                     truncated_responses_B=cut_responses)
