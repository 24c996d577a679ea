"""The Shopping MMLU loader (both released layouts), its errors, and `python -m rl_jax.eval`."""
import json
import os
import shutil

import pytest

from rl_jax.eval import __main__ as eval_main
from rl_jax.eval import shopping_mmlu, suites
from rl_jax.eval.metrics_shopping import SYSTEM_PROMPT

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata")
TASK_WISE = os.path.join(DATA, "shopping_mmlu")
SKILL_WISE = os.path.join(DATA, "shopping_mmlu_skills")
REF_MODEL = os.path.join(DATA, "qwen3_tiny_reference")


def test_task_wise_layout():
  suite = suites.EVAL_SUITES.get("shopping_mmlu")(data_dir=TASK_WISE)
  kinds = {n: (t.task_type, t.metric, t.skill, len(t.examples), t.max_new_tokens)
           for n, t in suite.tasks.items()}
  assert kinds == {
      "asin_compatibility": ("multiple_choice", "accuracy", "skill2_reasoning", 3, 1),
      "review_rating_prediction": ("multiple_choice", "accuracy", "skill3_user_behavior", 2, 1),
      "product_keyphrase_retrieval": ("retrieval", "hit rate@3", "skill1_concept", 2, 100),
      "query_product_ranking": ("ranking", "ndcg", "skill3_user_behavior", 2, 100),
      "query_named_entity_recognition": ("ner", "micro f1", "skill1_concept", 2, 100),
      "attribute_value_extraction": ("generation", "rougel", "skill1_concept", 2, 100),
      "product_title_translation": ("generation", "bleu", "skill4_multilingual", 1, 100),
      "pt_name_explain": ("generation", "sent-transformer", "skill1_concept", 1, 100),
  }
  mc = suite.tasks["asin_compatibility"].examples[1]
  assert mc.prompt == (SYSTEM_PROMPT + "Which of these is a fruit, not a tool?\n0. hammer\n"
                       "1. apple\n2. saw\n3. drill\nAnswer: ")
  assert mc.truth == "1"
  rating = suite.tasks["review_rating_prediction"].examples
  assert [e.truth for e in rating] == ["5", "1"]  # rating labels 1-5, no choices listed
  assert rating[1].prompt.endswith("give?\nAnswer: ")
  assert suite.tasks["query_product_ranking"].examples[0].truth == [3, 1, 0, 2]


def test_skill_wise_layout_and_budgets():
  suite = shopping_mmlu.load_shopping_mmlu(SKILL_WISE, mc_max_new_tokens=4)
  assert {n: (t.skill, t.task_type, t.max_new_tokens) for n, t in suite.tasks.items()} == {
      "attribute_selection": ("skill1_concept", "multiple_choice", 4),
      "query_ner": ("skill1_concept", "ner", 100),
      "pt_explain": ("skill1_concept", "generation", 100),
      "review_rating_prediction": ("skill3_user_behavior", "multiple_choice", 4),
      "query_ranking": ("skill3_user_behavior", "ranking", 100),
      "next_purchase": ("skill3_user_behavior", "retrieval", 100)}
  assert suite.tasks["attribute_selection"].examples[1].truth == "1"
  assert suite.tasks["attribute_selection"].examples[0].prompt.startswith(SYSTEM_PROMPT)


def test_report_of_perfect_and_empty_generations():
  suite = shopping_mmlu.load_shopping_mmlu(SKILL_WISE)
  perfect = {"attribute_selection": ["0", "1"], "query_ner": ["Red, Cotton"],
             "pt_explain": ["a cover for a phone"], "review_rating_prediction": [" 5"],
             "query_ranking": ["2, 3, 1"], "next_purchase": ["2"]}
  report = suites.suite_report(suite, suites.score_suite(suite, perfect))
  assert report["skills"] == pytest.approx({"skill1_concept": 1.0, "skill3_user_behavior": 1.0})
  empty = {k: [""] * len(v) for k, v in perfect.items()}
  report = suites.suite_report(suite, suites.score_suite(suite, empty))
  assert report["overall"] == 0.0
  table = suites.format_table(report)
  assert "| skill3_user_behavior | query_ranking | ranking | ndcg | 1 | 0.0000 |" in table


def _copy(tmp_path):
  dst = tmp_path / "data"
  shutil.copytree(TASK_WISE, dst)
  return dst


def test_missing_column_names_file_and_field(tmp_path):
  dst = _copy(tmp_path)
  path = dst / "multiple_choice" / "asin_compatibility_dataset.csv"
  lines = path.read_text().splitlines()
  path.write_text("\n".join(["question,answer"] + ["q,1"]) + "\n")
  with pytest.raises(shopping_mmlu.DataError, match=r"asin_compatibility_dataset\.csv, "
                     r"field 'choices': missing column"):
    shopping_mmlu.load_shopping_mmlu(str(dst))
  assert lines  # the fixture itself had the column


def test_label_outside_choices_names_file_row_field(tmp_path):
  dst = _copy(tmp_path)
  path = dst / "multiple_choice" / "asin_compatibility_dataset.csv"
  original = path.read_text()
  text = original.replace("\"['hammer', 'apple', 'saw', 'drill']\",1",
                                  "\"['hammer', 'apple', 'saw', 'drill']\",4")
  path.write_text(text)
  with pytest.raises(shopping_mmlu.DataError, match=r"asin_compatibility_dataset\.csv, row 2, "
                     r"field 'answer': expected a label in \['0', '1', '2', '3'\], got '4'"):
    shopping_mmlu.load_shopping_mmlu(str(dst))
  rating = dst / "multiple_choice" / "review_rating_prediction_dataset.csv"
  rating.write_text(rating.read_text().replace("[],1", "[],0"))
  path.write_text(original)
  with pytest.raises(shopping_mmlu.DataError, match=r"review_rating_prediction_dataset\.csv, "
                     r"row 2, field 'answer': expected a label in \['1', '2', '3', '4', '5'\]"):
    shopping_mmlu.load_shopping_mmlu(str(dst))


def test_json_missing_field_and_bad_truth(tmp_path):
  dst = _copy(tmp_path)
  path = dst / "ranking" / "query_product_ranking_dataset.json"
  path.write_text('{"input_field": "x", "target_field": [1, 0]}\n{"input_field": "y"}\n')
  with pytest.raises(shopping_mmlu.DataError, match=r"query_product_ranking_dataset\.json, row 2,"
                     r" field 'target_field': missing"):
    shopping_mmlu.load_shopping_mmlu(str(dst))
  path.write_text('{"input_field": "x", "target_field": "1, 2"}\n')
  with pytest.raises(shopping_mmlu.DataError, match=r"row 1, field 'target_field': expected a "
                     r"non-empty list of numbers"):
    shopping_mmlu.load_shopping_mmlu(str(dst))


def test_skill_file_errors(tmp_path):
  skills = tmp_path / "skills"
  skills.mkdir()
  (skills / "s.json").write_text(json.dumps({"input_field": "q", "output_field": 7,
                                             "task_name": "t", "task_type": "multiple-choice",
                                             "metric": "accuracy"}) + "\n")
  with pytest.raises(shopping_mmlu.DataError, match=r"s\.json, row 1, field 'output_field'"):
    shopping_mmlu.load_shopping_mmlu(str(tmp_path))
  (skills / "s.json").write_text(json.dumps({"input_field": "q", "output_field": 1,
                                             "task_name": "t", "task_type": "x",
                                             "metric": "f2"}) + "\n")
  with pytest.raises(shopping_mmlu.DataError, match=r"s\.json, row 1, field 'metric': unknown"):
    shopping_mmlu.load_shopping_mmlu(str(tmp_path))


def test_unknown_task_and_suite():
  with pytest.raises(ValueError, match=r"unknown task\(s\) \['nope'\]"):
    shopping_mmlu.load_shopping_mmlu(TASK_WISE, tasks=("nope",))
  with pytest.raises(ValueError, match="unknown eval suite 'mmlu_pro'"):
    suites.EVAL_SUITES.get("mmlu_pro")
  with pytest.raises(SystemExit, match="unknown suite 'mmlu_pro'"):
    eval_main.main(["--suite=mmlu_pro", f"--checkpoint={REF_MODEL}"])


def test_cli_on_hf_checkpoint(tmp_path, capsys):
  out = tmp_path / "report.json"
  eval_main.main(["--suite=shopping_mmlu", f"--data_dir={TASK_WISE}", f"--checkpoint={REF_MODEL}",
                  "--tokenizer=arith_char", "--max_new_tokens=4", f"--out={out}",
                  "--batch_size=4"])
  report = json.loads(out.read_text())
  assert set(report["tasks"]) == set(os.path.splitext(f)[0].replace("_dataset", "")
                                     for d in os.listdir(TASK_WISE)
                                     if os.path.isdir(os.path.join(TASK_WISE, d))
                                     for f in os.listdir(os.path.join(TASK_WISE, d)))
  assert set(report["skills"]) == {"skill1_concept", "skill2_reasoning", "skill3_user_behavior",
                                   "skill4_multilingual"}
  for t in report["tasks"].values():
    assert 0.0 <= t["score"] <= 1.0
  # multiple choice decodes one token: at most one character from the char tokenizer
  assert all(len(g.strip()) <= 1 for g in report["generations"]["asin_compatibility"])
  assert "| **overall** |" in capsys.readouterr().out


def test_cli_gsm8k_metrics(tmp_path):
  out = tmp_path / "gsm8k.json"
  report = eval_main.main(["--suite=gsm8k", f"--checkpoint={REF_MODEL}", "--tokenizer=arith_char",
                           "--max_examples=3", "--gsm8k_tokens=6", "--num_samples=4",
                           "--ks=1,2,4", "--temperature=1.0", f"--out={out}"])
  m = report["metrics"]
  assert set(m) == {"gsm8k/accuracy", "gsm8k/n", "gsm8k/len_mean", "gsm8k/pass@1",
                    "gsm8k/pass@2", "gsm8k/pass@4", "gsm8k/maj@4"}
  assert m["gsm8k/n"] == 3
  assert m["gsm8k/pass@1"] <= m["gsm8k/pass@2"] <= m["gsm8k/pass@4"] <= 1.0
  assert json.loads(out.read_text())["metrics"] == m
