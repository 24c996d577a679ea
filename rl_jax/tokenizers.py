"""Tokenizers: SentencePiece models trained on bundled data, HF `tokenizer.json` files, and exact
word-level tokenizers over a fixed vocabulary (the projects' synthetic worlds).

All satisfy the `Tokenizer` protocol the rest of rl_jax codes against. Conventions:
- `encode` never adds BOS/EOS: callers (chat template, rollout) decide where those go.
- `decode` never stops at EOS (the sampler truncates); by default it drops the pad/BOS/EOS ids,
  which have no text, and keeps every other token -- chat markers and `<tool_call>` tags included
  -- so the host can still parse tool calls. `keep_specials=True` renders pad/BOS/EOS too.

Bundled models (regenerate bit-exactly with `python -m rl_jax.tokenizers --rebuild`; verify with
`--check`), in `rl_jax/data/assets/tokenizers/`:
- `arith_char`: one piece per character of the arithmetic task ("0-9+=,") plus the specials. No
  byte fallback, so the vocabulary stays tiny (24) for the quickstart model; characters outside
  the task alphabet encode as `<unk>`.
- `gsm8k_unigram`: a 2000-piece unigram model on the bundled GSM8K train questions and solutions,
  with byte fallback, so any text round-trips exactly.

Every model trained here has <pad>=0, <unk>=1, <s>=2, </s>=3 (EOS), then the user-defined symbols
of `CHAT_SPECIALS` (+ any extras) from id 4 in order -- parsed out of text as single ids. (Word
models are the exception to the order: SentencePiece gives each symbol a "▁"-prefixed twin right
after it, so look ids up with `token_id`, never hard-code them.)
One documented exception to exact round trips: SentencePiece writes whitespace as U+2581 ("▁"),
so a literal U+2581 in input text decodes as a space.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
from typing import Iterable, Protocol, Sequence, runtime_checkable

import sentencepiece as spm

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
CHAT_SPECIALS = ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
                 "<tool_response>", "</tool_response>", "<translate>")
MODEL_TYPES = ("unigram", "bpe", "char", "word")
ASSET_DIR = pathlib.Path(__file__).resolve().parent / "data" / "assets" / "tokenizers"
BUNDLED = {"arith_char": "arith_char.model", "gsm8k_unigram": "gsm8k_unigram.model"}
_ROLES = ("system", "user", "assistant", "tool")
_SPACE_META = "\u2581"


@runtime_checkable
class Tokenizer(Protocol):
  vocab_size: int
  pad_id: int
  eos_id: int
  bos_id: int | None
  special_ids: dict[str, int]

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Iterable[int], keep_specials: bool = False) -> str: ...

  def token_id(self, piece: str) -> int: ...


def _check_text(text) -> str:
  if not isinstance(text, str):
    raise ValueError(f"encode: expected a str, got {type(text).__name__}")
  return text


def _check_ids(ids, vocab_size: int) -> list[int]:
  out = [int(i) for i in ids]
  for pos, i in enumerate(out):
    if not 0 <= i < vocab_size:
      raise ValueError(f"decode: id {i} at position {pos} is outside [0, {vocab_size})")
  return out


def _unknown_piece(piece: str, vocab_size: int, special_ids: dict[str, int]) -> ValueError:
  return ValueError(f"unknown token {piece!r}: not a single piece of this vocabulary "
                    f"(size {vocab_size}); special pieces: {sorted(special_ids)}")


class SentencePieceTokenizer:
  """A SentencePiece model, from a `.model` file path or its serialized bytes."""

  def __init__(self, model: str | os.PathLike | bytes):
    if isinstance(model, (bytes, bytearray)):
      source, proto = "<bytes>", bytes(model)
    else:
      path = pathlib.Path(model)
      if not path.is_file():
        raise ValueError(f"SentencePiece model file not found: {path}")
      source, proto = str(path), path.read_bytes()
    try:
      self._sp = spm.SentencePieceProcessor(model_proto=proto)
    except RuntimeError as e:
      raise ValueError(f"{source}: not a SentencePiece model ({e})") from None
    self.model_bytes = self._sp.serialized_model_proto()
    self.vocab_size = self._sp.get_piece_size()
    self.pad_id, self.eos_id = self._sp.pad_id(), self._sp.eos_id()
    self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else None
    for name, value in (("pad", self.pad_id), ("eos", self.eos_id)):
      if value < 0:
        raise ValueError(f"{source}: the model has no {name} piece; train it with "
                         f"train_sentencepiece (or {name}_id >= 0)")
    sp = self._sp
    self.special_ids = {sp.id_to_piece(i): i for i in range(self.vocab_size)
                        if sp.is_control(i) or sp.is_unknown(i)}
    for piece in CHAT_SPECIALS:
      i = sp.piece_to_id(piece)
      if sp.id_to_piece(i) == piece:
        self.special_ids[piece] = i
    self._drop = {i for i in (self.pad_id, self.eos_id, self.bos_id) if i is not None}

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(_check_text(text), out_type=int)

  def decode(self, ids: Iterable[int], keep_specials: bool = False) -> str:
    ids = _check_ids(ids, self.vocab_size)
    if not keep_specials:
      # "▁" only reaches decoded text via byte fallback of the whitespace meta symbol
      # (word models do that for unseen words): it stands for a space.
      return self._sp.decode([i for i in ids if i not in self._drop]).replace(_SPACE_META, " ")
    # SentencePiece renders control pieces as "", so decode runs of ordinary ids and spell
    # the control pieces out in between.
    parts, run = [], []
    for i in ids:
      if self._sp.is_control(i):
        parts += [self._sp.decode(run), self._sp.id_to_piece(i)]
        run = []
      else:
        run.append(i)
    parts.append(self._sp.decode(run))
    return "".join(parts).replace(_SPACE_META, " ")

  def token_id(self, piece: str) -> int:
    i = self._sp.piece_to_id(piece)
    if self._sp.id_to_piece(i) != piece:  # piece_to_id maps anything unknown to <unk>
      raise _unknown_piece(piece, self.vocab_size, self.special_ids)
    return i

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(_check_ids([i], self.vocab_size)[0])

  def save(self, path: str | os.PathLike) -> None:
    pathlib.Path(path).write_bytes(self.model_bytes)


class WordTokenizer:
  """Exact word-level tokenizer over a fixed vocabulary (the synthetic worlds of the projects):
  text is words separated by whitespace, one id per word. Ids 0, 1 (and 2) are `specials` (pad,
  eos and, when a third is given, bos), then `words` in order. Encoding a word outside the
  vocabulary is an error naming the word, its position and `name` (a world only ever writes its
  own words); decoding drops the specials unless `keep_specials`."""

  def __init__(self, words: Sequence[str], *, specials: Sequence[str] = ("<pad>", "</s>"),
               name: str = "word tokenizer"):
    if len(specials) not in (2, 3):
      raise ValueError(f"{name}: specials are (pad, eos) or (pad, eos, bos), got {specials!r}")
    self.name = name
    self.pieces = list(specials) + list(words)
    self.ids = {w: i for i, w in enumerate(self.pieces)}
    if len(self.ids) != len(self.pieces):
      dup = sorted({w for w in self.pieces if self.pieces.count(w) > 1})
      raise ValueError(f"{name}: duplicate words in the vocabulary: {dup[:10]}")
    self.vocab_size = len(self.pieces)
    self.pad_id, self.eos_id = 0, 1
    self.bos_id = 2 if len(specials) == 3 else None
    self.special_ids = {w: i for i, w in enumerate(specials)}

  def encode(self, text: str) -> list[int]:
    out = []
    for pos, w in enumerate(_check_text(text).split()):
      if w not in self.ids:
        raise ValueError(f"{self.name}: unknown word {w!r} (word {pos} of {text[:60]!r}): not "
                         "in the vocabulary")
      out.append(self.ids[w])
    return out

  def decode(self, ids: Iterable[int], keep_specials: bool = False) -> str:
    ids = _check_ids(ids, self.vocab_size)
    n_specials = len(self.special_ids)
    return " ".join(self.pieces[i] for i in ids if keep_specials or i >= n_specials)

  def token_id(self, piece: str) -> int:
    if piece not in self.ids:
      raise ValueError(f"{self.name}: unknown token {piece!r}")
    return self.ids[piece]


def _added_token_content(value) -> str | None:
  """tokenizer_config.json writes special tokens as "str" or {"content": "str", ...}."""
  return value.get("content") if isinstance(value, dict) else value


class HFTokenizer:
  """A HuggingFace `tokenizers` tokenizer (e.g. a Qwen3 checkpoint's `tokenizer.json`)."""

  def __init__(self, tok, *, eos_token: str, pad_token: str, bos_token: str | None):
    self._tok = tok
    added = {t.content: i for i, t in tok.get_added_tokens_decoder().items()}
    self.special_ids = dict(added)
    self.vocab_size = max([tok.get_vocab_size(with_added_tokens=True)] +
                          [i + 1 for i in added.values()])
    self.eos_id, self.pad_id = self.token_id(eos_token), self.token_id(pad_token)
    self.bos_id = None if bos_token is None else self.token_id(bos_token)
    for piece in (eos_token, pad_token, bos_token):
      if piece is not None:
        self.special_ids[piece] = self.token_id(piece)
    self._drop = {i for i in (self.pad_id, self.eos_id, self.bos_id) if i is not None}

  @classmethod
  def from_file(cls, path: str | os.PathLike, *, eos_token: str | None = None,
                pad_token: str | None = None, bos_token: str | None = None) -> "HFTokenizer":
    """Load `tokenizer.json`. EOS/pad/BOS come from the arguments, else from a
    `tokenizer_config.json` beside the file, else from common names; pad defaults to EOS
    (Qwen3 pads with <|endoftext|>) and BOS to None (Qwen3 has none)."""
    import tokenizers  # the HF library (absolute import, not this module)

    path = pathlib.Path(path)
    if path.is_dir():
      path = path / "tokenizer.json"
    if not path.is_file():
      raise ValueError(f"tokenizer.json not found: {path}")
    try:
      tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # the library raises a bare Exception on bad JSON
      raise ValueError(f"{path}: not a HF tokenizer.json ({e})") from None
    config = {}
    if (path.parent / "tokenizer_config.json").is_file():
      config = json.loads((path.parent / "tokenizer_config.json").read_text("utf-8"))

    def resolve(given, key, candidates):
      if given is not None:
        return given
      if key in config:  # an explicit null means "none" (Qwen3's bos_token)
        content = _added_token_content(config[key])
        if content is not None or key == "bos_token":
          return content
      return next((c for c in candidates if tok.token_to_id(c) is not None), None)

    eos = resolve(eos_token, "eos_token", ("</s>", "<|endoftext|>", "<eos>", "<|im_end|>"))
    if eos is None:
      added = sorted(t.content for t in tok.get_added_tokens_decoder().values())
      raise ValueError(f"{path}: cannot tell the EOS token (no tokenizer_config.json "
                       f"beside it and no common name found); pass eos_token=, one of "
                       f"the added tokens {added}")
    pad = resolve(pad_token, "pad_token", ("<pad>",)) or eos
    bos = resolve(bos_token, "bos_token", ("<s>", "<bos>"))
    return cls(tok, eos_token=eos, pad_token=pad, bos_token=bos)

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(_check_text(text), add_special_tokens=False).ids

  def decode(self, ids: Iterable[int], keep_specials: bool = False) -> str:
    ids = _check_ids(ids, self.vocab_size)
    if not keep_specials:
      ids = [i for i in ids if i not in self._drop]
    return self._tok.decode(ids, skip_special_tokens=False)

  def token_id(self, piece: str) -> int:
    i = self._tok.token_to_id(piece)
    if i is None:
      raise _unknown_piece(piece, self.vocab_size, self.special_ids)
    return i


def train_sentencepiece(texts: Iterable[str], *, vocab_size: int, model_type: str = "unigram",
                        seed: int = 0, byte_fallback: bool = True,
                        extra_symbols: Sequence[str] = ()) -> SentencePieceTokenizer:
  """Train a SentencePiece model in memory, deterministically (same inputs -> same bytes).

  Fixed settings make it exact and reproducible: one thread, identity normalisation, no dummy
  prefix, whitespace kept as is, digits split, character coverage 1.0, sentencepiece's global
  random seed set to `seed`. `vocab_size` is an upper bound (char and word models stop at the
  pieces the corpus has) and must exceed the reserved pieces: 4 + len(CHAT_SPECIALS) +
  len(extra_symbols), + 256 byte pieces with `byte_fallback`. `extra_symbols` are further
  user-defined pieces, parsed out of text as single ids.
  """
  if model_type not in MODEL_TYPES:
    raise ValueError(f"model_type: expected one of {MODEL_TYPES}, got {model_type!r}")
  texts = list(texts)
  if not texts:
    raise ValueError("texts: expected at least one training string, got none")
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise ValueError(f"texts[{i}]: expected a str, got {type(t).__name__}")
  symbols = list(CHAT_SPECIALS) + [s for s in extra_symbols if s not in CHAT_SPECIALS]
  reserved = 4 + len(symbols) + (256 if byte_fallback else 0)
  if not isinstance(vocab_size, int) or vocab_size <= reserved:
    raise ValueError(f"vocab_size: expected an int > {reserved} (specials"
                     f"{' + 256 byte pieces' if byte_fallback else ''}), got {vocab_size!r}")
  spm.set_random_generator_seed(seed)
  writer = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=writer, model_type=model_type,
        vocab_size=vocab_size, hard_vocab_limit=False, num_threads=1,
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
        user_defined_symbols=symbols, byte_fallback=byte_fallback,
        normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, character_coverage=1.0,
        max_sentence_length=1 << 20, shuffle_input_sentence=False, minloglevel=2)
  except RuntimeError as e:
    raise ValueError(f"sentencepiece training failed (model_type={model_type}, "
                     f"vocab_size={vocab_size}, {len(texts)} texts): {e}") from None
  return SentencePieceTokenizer(writer.getvalue())


def chat_template(messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
  """Qwen-style ChatML: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message.

  As in Qwen2.5/Qwen3's own template, consecutive `tool` messages become ONE user turn with each
  result wrapped in `<tool_response>...</tool_response>`. No tool-schema system prompt and no
  thinking tags are added. `add_generation_prompt` appends `<|im_start|>assistant\\n`.
  """
  parts = []
  for i, m in enumerate(messages):
    if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(
            m.get("content"), str):
      raise ValueError(f"messages[{i}]: expected {{'role': one of {_ROLES}, "
                       f"'content': str}}, got {m!r}")
    role, content = m["role"], m["content"]
    if role != "tool":
      parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
      continue
    if i == 0 or messages[i - 1]["role"] != "tool":
      parts.append("<|im_start|>user")
    parts.append(f"\n<tool_response>\n{content}\n</tool_response>")
    if i == len(messages) - 1 or messages[i + 1].get("role") != "tool":
      parts.append("<|im_end|>\n")
  if add_generation_prompt:
    parts.append("<|im_start|>assistant\n")
  return "".join(parts)


def load_tokenizer(name: str | os.PathLike) -> Tokenizer:
  """A bundled tokenizer by name ("arith_char", "gsm8k_unigram"), or a path to a SentencePiece
  `.model`, a `tokenizer.json`, or a checkpoint directory holding `tokenizer.json`."""
  if isinstance(name, str) and name in BUNDLED:
    return SentencePieceTokenizer(ASSET_DIR / BUNDLED[name])
  path = pathlib.Path(name)
  if path.suffix == ".model" and path.is_file():
    return SentencePieceTokenizer(path)
  if (path.suffix == ".json" and path.is_file()) or (path / "tokenizer.json").is_file():
    return HFTokenizer.from_file(path)
  raise ValueError(f"unknown tokenizer {str(name)!r}: expected one of {sorted(BUNDLED)} or an "
                   f"existing path to a .model file, a tokenizer.json, or a directory with one")


def build_bundled(name: str) -> SentencePieceTokenizer:
  """Train bundled tokenizer `name` from the bundled data (deterministic)."""
  if name == "arith_char":
    from rl_jax.envs.arithmetic import corpus_texts

    return train_sentencepiece(corpus_texts(n=3000, seed=0), vocab_size=64,
                               model_type="char", byte_fallback=False)
  if name == "gsm8k_unigram":
    from rl_jax.data.gsm8k import load_gsm8k

    texts = []
    for p in load_gsm8k("train"):
      texts += [p.question, f"{p.solution}\n#### {p.answer}"]
    return train_sentencepiece(texts, vocab_size=2000, model_type="unigram")
  raise ValueError(f"unknown bundled tokenizer {name!r}: expected one of {sorted(BUNDLED)}")


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m rl_jax.tokenizers",
                                   description="Regenerate or verify the bundled tokenizers.")
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--rebuild", action="store_true", help="retrain and overwrite the assets")
  mode.add_argument("--check", action="store_true", help="retrain and compare (exit 1 if any "
                    "asset differs)")
  args = parser.parse_args(argv)
  status = 0
  for name, filename in BUNDLED.items():
    model_bytes = build_bundled(name).model_bytes
    path = ASSET_DIR / filename
    if args.rebuild:
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(model_bytes)
      print(f"wrote {path} ({len(model_bytes)} bytes)")
    else:
      same = path.is_file() and path.read_bytes() == model_bytes
      print(f"{path}: {'up to date' if same else 'DIFFERS from a rebuild'}")
      status |= not same
  return status


if __name__ == "__main__":
  sys.exit(main())
