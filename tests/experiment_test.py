"""Experiment schema: strict sections, sweep expansion, the stage plan's config errors."""

import pytest

from rl_jax import experiment
from rl_jax.experiment import RLSection
from rl_jax.stages import variants


def test_unknown_top_level_section_lists_the_valid_sections(load_config):
  c = load_config("quickstart")
  c["rlhf"] = {"steps": 3}
  with pytest.raises(ValueError, match=r"unknown config section 'rlhf'; valid sections: \[") as e:
    experiment.from_config_dict(c)
  for name in ("checkpoint", "eval", "mesh", "model", "pretrain", "rl", "sft", "task"):
    assert repr(name) in str(e.value), name


def test_sweep_variants_product_names_and_values():
  rl = RLSection(advantage={"name": "gated"},
                 sweep={"advantage": {"lam": (0.1, 0.5)}, "learning_rate": (1e-4, 3e-4)})
  expanded = variants.sweep_variants(rl)
  assert [name for name, _, _ in expanded] == [
      "rl_lam=0.1_learning_rate=0.0001", "rl_lam=0.1_learning_rate=0.0003",
      "rl_lam=0.5_learning_rate=0.0001", "rl_lam=0.5_learning_rate=0.0003"]
  want = [(0.1, 1e-4), (0.1, 3e-4), (0.5, 1e-4), (0.5, 3e-4)]
  for (_, overrides, section), (lam, lr) in zip(expanded, want):
    assert overrides == {"advantage.lam": lam, "learning_rate": lr}
    assert section.advantage == {"name": "gated", "lam": lam}
    assert section.learning_rate == lr
    assert section.sweep == {}
    # Everything not swept is the base section's.
    assert section.group_size == rl.group_size and section.steps == rl.steps
  assert rl.advantage == {"name": "gated"}  # the base section is not modified


def test_sweep_of_one_value_and_no_sweep():
  rl = RLSection(sweep={"advantage": {"lam": (0.1, 0.5)}, "learning_rate": (1e-4,)},
                 advantage={"name": "gated"})
  names = [n for n, _, _ in variants.sweep_variants(rl)]
  assert names == ["rl_lam=0.1_learning_rate=0.0001", "rl_lam=0.5_learning_rate=0.0001"]
  plain = RLSection()
  assert variants.sweep_variants(plain) == [("rl", {}, plain)]


def test_sweep_of_a_missing_field_is_an_error():
  with pytest.raises(ValueError, match=r"rl\.sweep\.learning_rat: rl has no field "
                                       r"'learning_rat'"):
    variants.sweep_variants(RLSection(sweep={"learning_rat": (1e-4,)}))
  with pytest.raises(ValueError, match=r"rl\.sweep\.rollout\.max_callz: rl has no field "
                                       r"'max_callz'"):
    variants.sweep_variants(RLSection(sweep={"rollout": {"max_callz": (1, 2)}}))
  with pytest.raises(ValueError, match=r"rl\.sweep\.temperature must be a non-empty tuple"):
    variants.sweep_variants(RLSection(sweep={"temperature": ()}))


def test_sweep_values_are_checked_at_config_time(load_config):
  c = load_config("quickstart")
  c["rl"]["sweep"] = {"advantage": {"normalise": ("std", "none")}}  # misspelt part kwarg
  with pytest.raises(ValueError, match=r"unknown config key\(s\) .*advantage\.\['normalise'\] "
                                       r"for advantage 'group'"):
    experiment.from_config_dict(c)
  c["rl"]["sweep"] = {"learning_rat": (1e-4,)}
  with pytest.raises(ValueError, match="rl has no field 'learning_rat'"):
    experiment.from_config_dict(c)


def test_unknown_stage_kind_is_an_error(load_config):
  c = load_config("quickstart")
  c["stages"] = ("sft", "rlhf")
  with pytest.raises(ValueError, match=r"config stages must name each of .* at most once, got "
                                       r"\('sft', 'rlhf'\)"):
    experiment.from_config_dict(c)
  c["stages"] = ("sft", "rl", "sft")
  with pytest.raises(ValueError, match="at most once"):
    experiment.from_config_dict(c)
