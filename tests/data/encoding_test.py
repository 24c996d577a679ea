"""Slot layout of prompts / SFT examples, and clear errors for over-long text."""
import numpy as np
import pytest

from rl_jax.data.encoding import decode_responses, encode_examples, encode_prompts
from rl_jax.tokenizers import load_tokenizer

TOK = load_tokenizer("arith_char")


def test_prompts_are_left_padded_and_examples_follow_the_rollout_layout():
  tokens, valid = encode_prompts(TOK, ["12+3=", "1+2+3="], 8)
  assert valid.tolist() == [[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]]
  assert (tokens[~valid] == TOK.pad_id).all()
  assert TOK.decode(tokens[0][valid[0]]) == "12+3="
  toks, val, mask = encode_examples(TOK, ["12+3="], ["51"], 8, 4)
  assert toks.shape == (1, 12)
  assert mask[0].tolist() == [0] * 8 + [1, 1, 1, 0]  # completion + EOS are trained on
  assert toks[0, 10] == TOK.eos_id and not val[0, 11]
  assert decode_responses(TOK, toks, mask, 8, (TOK.eos_id,)) == ["51"]


def test_too_long_prompt_or_completion_is_an_error():
  with pytest.raises(ValueError, match=r"prompt 1 has 6 tokens, more than prompt_len=5"):
    encode_prompts(TOK, ["1+2=", "11+22="], 5)
  with pytest.raises(ValueError, match=r"completion 0 has 5 tokens \(with EOS\), more than "
                                       r"max_new_tokens=4"):
    encode_examples(TOK, ["1="], ["1234"], 4, 4)
  with pytest.raises(ValueError, match="2 prompts but 1 completions"):
    encode_examples(TOK, ["1=", "2="], ["1"], 4, 4)
