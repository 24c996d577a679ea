"""The quickstart addition task, checked against plain Python integer arithmetic."""
import numpy as np
import pytest

from rl_jax.envs.arithmetic import ALPHABET, ArithmeticTask, Problem, corpus_texts


def _decode_reversed(field: str) -> int:
  return int(field[::-1])


def test_worked_example():
  p = ArithmeticTask(num_operands=3, num_digits=2).make_problem((12, 34, 56))
  assert p == Problem(prompt="21+43+65=", completion="640,201", answer="201",
                      operands=(12, 34, 56))


@pytest.mark.parametrize("k,n,width", [(2, 1, 2), (3, 2, 3), (4, 3, 4), (11, 1, 2), (12, 1, 3)])
def test_matches_python_int_arithmetic(k, n, width):
  task = ArithmeticTask(num_operands=k, num_digits=n)
  assert task.sum_width == width
  for p in task.sample(300, k * 10 + n):
    operand_fields = p.prompt[:-1].split("+")
    assert p.prompt.endswith("=") and len(operand_fields) == k
    assert all(len(f) == n for f in operand_fields)
    values = [_decode_reversed(f) for f in operand_fields]
    assert tuple(values) == p.operands
    fields = p.completion.split(",")
    assert len(fields) == k - 1 and all(len(f) == width for f in fields)
    running = [sum(values[: j + 1]) for j in range(1, k)]
    assert [_decode_reversed(f) for f in fields] == running
    assert _decode_reversed(p.answer) == sum(values) and fields[-1] == p.answer
    assert task.reward(p, p.completion) == 1.0
    assert task.reward(p.prompt, p.completion) == 1.0


def test_sample_is_deterministic_per_seed():
  task = ArithmeticTask()
  assert task.sample(50, 7) == task.sample(50, 7)
  assert task.sample(50, 7) != task.sample(50, 8)
  rng = np.random.default_rng(3)
  first, second = task.sample(20, rng), task.sample(20, rng)  # a Generator is advanced
  assert first != second
  assert first == task.sample(20, np.random.default_rng(3))


@pytest.mark.parametrize("k,n", [(3, 2), (4, 3)])  # exact choice / rejection sampling paths
def test_split_is_disjoint_and_deterministic(k, n):
  task = ArithmeticTask(k, n)
  train, held_out = task.split(400, 200, seed=0)
  assert len(train) == 400 and len(held_out) == 200
  train_ops = {p.operands for p in train}
  eval_ops = {p.operands for p in held_out}
  assert len(train_ops) == 400 and len(eval_ops) == 200
  assert not train_ops & eval_ops
  assert task.split(400, 200, seed=0) == (train, held_out)


def test_split_can_use_the_whole_space_but_no_more():
  task = ArithmeticTask(2, 1)  # 100 operand tuples
  train, held_out = task.split(60, 40, seed=1)
  assert {p.operands for p in train + held_out} == {(a, b) for a in range(10) for b in range(10)}
  with pytest.raises(ValueError, match="only 100"):
    task.split(60, 41, seed=1)


@pytest.mark.parametrize("completion,expected", [
    ("640,201", 1.0),
    (" 640,201\n", 1.0),          # surrounding whitespace is ignored
    ("999,201", 1.0),             # intermediate sums are not graded
    ("640,200", 0.0),
    ("640,102", 0.0),             # not reversed
    ("201", 0.0),                 # missing a field
    ("640,201,201", 0.0),
    ("640,201,", 0.0),
    ("640,2010", 0.0),            # wrong width
    ("640,21", 0.0),
    ("640,2O1", 0.0),
    ("640;201", 0.0),
    ("\u0666\u0664\u0660,\u0662\u0660\u0661", 0.0),  # Arabic-Indic digits are not the alphabet
    ("", 0.0),
    ("<unk>", 0.0),
    (None, 0.0),
])
def test_reward_exact_final_answer_and_malformed(completion, expected):
  task = ArithmeticTask()
  assert task.reward("21+43+65=", completion) == expected


def test_malformed_prompt_is_a_caller_error():
  task = ArithmeticTask()
  with pytest.raises(ValueError, match="3 operands of 2 digits"):
    task.reward("21+43=", "640")
  with pytest.raises(ValueError, match="arithmetic prompt"):
    ArithmeticTask.from_prompt("21+4=")
  assert ArithmeticTask.from_prompt("1+2+3+4=") == ArithmeticTask(4, 1)


@pytest.mark.parametrize("kwargs,field", [
    (dict(num_operands=1), "num_operands"), (dict(num_operands=17), "num_operands"),
    (dict(num_operands=True), "num_operands"), (dict(num_digits=0), "num_digits"),
    (dict(num_digits=2.0), "num_digits"), (dict(num_digits=13), "num_digits"),
])
def test_knob_validation(kwargs, field):
  with pytest.raises(ValueError, match=field):
    ArithmeticTask(**kwargs)


def test_make_problem_validates_operands():
  with pytest.raises(ValueError, match=r"operands\[1\]"):
    ArithmeticTask().make_problem((1, 100, 3))
  with pytest.raises(ValueError, match="expected 3 values"):
    ArithmeticTask().make_problem((1, 2))


def test_corpus_uses_exactly_the_alphabet():
  chars = set("".join(corpus_texts(n=300, seed=0)))
  assert chars == set(ALPHABET) == set("0123456789+=,")
