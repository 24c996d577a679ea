"""Tokenizers: bundled SentencePiece models, in-memory training, HF tokenizer.json wrapper."""
import json

import pytest

from rl_jax import tokenizers as tk
from rl_jax.data.gsm8k import ASSET_DIR as GSM8K_DIR
from rl_jax.envs.arithmetic import ArithmeticTask

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<tool_call>",
            "</tool_call>", "<tool_response>", "</tool_response>", "<translate>"]
UNSEEN = "Ünïcödé 日本語 🙂 Привет\tTAB\r\n  two  spaces  and trailing  "


@pytest.fixture(scope="module")
def gsm():
  return tk.load_tokenizer("gsm8k_unigram")


@pytest.fixture(scope="module")
def arith():
  return tk.load_tokenizer("arith_char")


@pytest.mark.parametrize("name", ["gsm8k_unigram", "arith_char"])
def test_special_tokens_have_fixed_single_ids(name):
  tok = tk.load_tokenizer(name)
  assert isinstance(tok, tk.Tokenizer)
  assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 2, 3)
  for expected_id, piece in enumerate(SPECIALS):
    assert tok.token_id(piece) == expected_id
    assert tok.special_ids[piece] == expected_id
  for piece in SPECIALS[4:]:  # user-defined symbols are parsed out of text
    assert tok.encode(piece) == [tok.token_id(piece)]


def test_gsm8k_round_trip_on_bundled_text(gsm):
  lines = (GSM8K_DIR / "test.jsonl").read_text(encoding="utf-8").splitlines()[:200]
  for line in lines:
    row = json.loads(line)
    for text in (row["question"], row["answer"]):
      assert gsm.decode(gsm.encode(text)) == text
  assert gsm.vocab_size == 2000


def test_byte_fallback_round_trips_unseen_unicode(gsm):
  ids = gsm.encode(UNSEEN)
  assert gsm.decode(ids) == UNSEEN
  byte_pieces = [gsm.id_to_piece(i) for i in ids if gsm.id_to_piece(i).startswith("<0x")]
  assert "<0xF0>" in byte_pieces  # the emoji's first UTF-8 byte
  assert tk.UNK not in [gsm.id_to_piece(i) for i in ids]


def test_chat_template_round_trips_with_single_id_markers(gsm):
  text = tk.chat_template([{"role": "user", "content": "2+2?"}])
  assert text == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
  ids = gsm.encode(text)
  assert gsm.decode(ids) == text
  assert ids.count(4) == 2 and ids.count(5) == 1 and ids[0] == 4


def test_arith_char_vocabulary_and_round_trip(arith):
  assert arith.vocab_size == len(SPECIALS) + len("0123456789+=,")
  for ch in "0123456789+=,":
    assert len(arith.encode(ch)) == 1
  for p in ArithmeticTask(3, 2).sample(50, 0) + ArithmeticTask(5, 4).sample(50, 1):
    text = p.prompt + p.completion
    ids = arith.encode(text)
    assert len(ids) == len(text) and arith.decode(ids) == text
  assert arith.encode("x") == [1]  # closed alphabet: no byte fallback


def test_arith_char_asset_matches_a_rebuild():
  assert tk.build_bundled("arith_char").model_bytes == (
      tk.ASSET_DIR / "arith_char.model").read_bytes()


def test_decode_skips_pad_bos_eos_unless_asked(arith):
  ids = [2] + arith.encode("1+2") + [3, 0, 0]
  assert arith.decode(ids) == "1+2"
  assert arith.decode(ids, keep_specials=True) == "<s>1+2</s><pad><pad>"
  tool = arith.encode("<tool_call>1</tool_call>")
  assert arith.decode(tool) == "<tool_call>1</tool_call>"  # text-bearing specials are kept
  with pytest.raises(ValueError, match="outside"):
    arith.decode([arith.vocab_size])


def test_token_id_unknown_and_load_errors(arith, tmp_path):
  with pytest.raises(ValueError, match="unknown token '<nope>'"):
    arith.token_id("<nope>")
  with pytest.raises(ValueError, match="arith_char.*gsm8k_unigram"):
    tk.load_tokenizer("qwen3")
  path = tmp_path / "copy.model"
  arith.save(path)
  assert tk.load_tokenizer(str(path)).encode("12+3") == arith.encode("12+3")
  (tmp_path / "junk.model").write_bytes(b"not a model")
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    tk.SentencePieceTokenizer(tmp_path / "junk.model")


_CORPUS = [f"the {a} cat sat on {b} mats, {a * b} times." for a in range(12) for b in range(9)]


def test_training_is_deterministic():
  first = tk.train_sentencepiece(_CORPUS, vocab_size=320)
  second = tk.train_sentencepiece(list(_CORPUS), vocab_size=320)
  assert first.model_bytes == second.model_bytes
  other = tk.train_sentencepiece(_CORPUS[:50], vocab_size=320)
  assert other.model_bytes != first.model_bytes  # the check above can fail


@pytest.mark.parametrize("model_type", tk.MODEL_TYPES)
def test_every_model_type_round_trips(model_type):
  tok = tk.train_sentencepiece(_CORPUS, vocab_size=400, model_type=model_type,
                               extra_symbols=["<sep>"])
  for text in ("the 7 cat sat on 3 mats", "a dog ran", "<sep>", UNSEEN):
    assert tok.decode(tok.encode(text)) == text
  assert tok.encode("<sep>") == [tok.token_id("<sep>")]
  assert [tok.token_id(p) for p in SPECIALS[:4]] == [0, 1, 2, 3]
  if model_type != "word":  # word models interleave a "▁<sym>" twin after each symbol
    assert tok.token_id("<sep>") == 11


def test_word_model_without_byte_fallback_is_small():
  tok = tk.train_sentencepiece(["a b a c", "b c"], vocab_size=64, model_type="word",
                               byte_fallback=False)
  # 4 control/unk + 7 symbols with their "▁" twins + words "a", "b", "▁a", "▁b", "▁c"
  # (no dummy prefix, so line-initial words differ from the others)
  assert tok.vocab_size == 4 + 2 * 7 + 5
  assert tok.decode(tok.encode("b a c")) == "b a c"


def test_training_validation():
  with pytest.raises(ValueError, match="vocab_size: expected an int > 267"):
    tk.train_sentencepiece(_CORPUS, vocab_size=200)
  with pytest.raises(ValueError, match="model_type"):
    tk.train_sentencepiece(_CORPUS, vocab_size=400, model_type="wordpiece")
  with pytest.raises(ValueError, match=r"texts\[1\]"):
    tk.train_sentencepiece(["ok", 3], vocab_size=400)
  with pytest.raises(ValueError, match="at least one"):
    tk.train_sentencepiece([], vocab_size=400)


def test_chat_template_tool_turns_grouped_like_qwen():
  text = tk.chat_template([
      {"role": "system", "content": "S"},
      {"role": "assistant", "content": "<tool_call>t</tool_call>"},
      {"role": "tool", "content": "r1"},
      {"role": "tool", "content": "r2"},
  ], add_generation_prompt=False)
  assert text == ("<|im_start|>system\nS<|im_end|>\n"
                  "<|im_start|>assistant\n<tool_call>t</tool_call><|im_end|>\n"
                  "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n"
                  "<tool_response>\nr2\n</tool_response><|im_end|>\n")
  with pytest.raises(ValueError, match=r"messages\[0\]"):
    tk.chat_template([{"role": "robot", "content": "x"}])


def _tiny_hf_tokenizer_json(directory):
  from tokenizers import Tokenizer, models, pre_tokenizers

  vocab = {"[UNK]": 0, "hello": 1, "world": 2, "2": 3, "+": 4}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])  # ids 5, 6, 7
  tok.add_tokens(["<tool_call>"])  # id 8, a non-special added token (as in Qwen3)
  path = directory / "tokenizer.json"
  tok.save(str(path))
  return path


def test_hf_tokenizer_from_tokenizer_json(tmp_path):
  path = _tiny_hf_tokenizer_json(tmp_path)
  tok = tk.HFTokenizer.from_file(path)  # no config: EOS found by common name
  assert isinstance(tok, tk.Tokenizer)
  assert (tok.eos_id, tok.pad_id, tok.bos_id, tok.vocab_size) == (5, 5, None, 9)
  assert tok.encode("hello world <|im_end|>") == [1, 2, 7]  # no BOS/EOS added
  assert tok.encode("hello 2+2") == [1, 3, 4, 3]
  assert tok.special_ids == {"<|endoftext|>": 5, "<|im_start|>": 6, "<|im_end|>": 7,
                             "<tool_call>": 8}
  assert tok.token_id("world") == 2
  with pytest.raises(ValueError, match="unknown token 'planet'"):
    tok.token_id("planet")
  assert tok.decode([1, 2, 5, 5]) == "hello world"  # pad/EOS dropped, not a stop
  assert "<|endoftext|>" in tok.decode([1, 5], keep_specials=True)

  # A Qwen3-instruct-style config beside the file sets EOS / pad / BOS.
  (tmp_path / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>"},
       "bos_token": None}))
  tok = tk.load_tokenizer(tmp_path)
  assert isinstance(tok, tk.HFTokenizer)
  assert (tok.eos_id, tok.pad_id, tok.bos_id) == (7, 5, None)
  assert tok.decode([6, 1, 7]) == tok.decode([6, 1], keep_specials=True)
  assert tk.HFTokenizer.from_file(path, eos_token="<|endoftext|>").eos_id == 5


def test_hf_tokenizer_errors(tmp_path):
  with pytest.raises(ValueError, match="not found"):
    tk.HFTokenizer.from_file(tmp_path / "tokenizer.json")
  (tmp_path / "tokenizer.json").write_text("{broken")
  with pytest.raises(ValueError, match="not a HF tokenizer.json"):
    tk.HFTokenizer.from_file(tmp_path / "tokenizer.json")


def test_word_tokenizer_ids_by_hand_and_errors():
  tok = tk.WordTokenizer(["a", "b", "c"])
  assert isinstance(tok, tk.Tokenizer)
  assert (tok.vocab_size, tok.pad_id, tok.eos_id, tok.bos_id) == (5, 0, 1, None)
  assert tok.encode("b  a\nc") == [3, 2, 4] and tok.encode("") == []
  assert tok.decode([3, 1, 0, 2]) == "b a"
  assert tok.decode([3, 1, 0, 2], keep_specials=True) == "b </s> <pad> a"
  assert tok.token_id("</s>") == 1 and tok.special_ids == {"<pad>": 0, "</s>": 1}
  with_bos = tk.WordTokenizer(["x"], specials=("P", "E", "B"), name="demo")
  assert (with_bos.bos_id, with_bos.encode("x"), with_bos.decode([2, 3, 1])) == (2, [3], "x")
  with pytest.raises(ValueError, match=r"demo: unknown word 'y' \(word 1 of 'x y'\)"):
    with_bos.encode("x y")
  with pytest.raises(ValueError, match="demo: unknown token 'y'"):
    with_bos.token_id("y")
  with pytest.raises(ValueError, match="outside"):
    tok.decode([5])
  with pytest.raises(ValueError, match=r"duplicate words in the vocabulary: \['a'\]"):
    tk.WordTokenizer(["a", "b", "a"])
  with pytest.raises(ValueError, match="specials are"):
    tk.WordTokenizer(["a"], specials=("<pad>",))
