"""Registry: errors name the registered parts, the config path and the valid keys."""
import pytest

from rl_jax.registry import Registry


def _widgets() -> Registry:
  reg = Registry("widget")

  @reg.register("round")
  def round_widget(*, ctx, size: int = 1, color: str = "red"):
    return ("round", ctx, size, color)

  @reg.register("square")
  def square_widget(*, section, **kwargs):
    return ("square", section, kwargs)

  return reg


def test_build_passes_config_kwargs_and_context():
  reg = _widgets()
  assert reg.build({"name": "round", "size": 3}, "rl.widget", ctx="C") == ("round", "C", 3, "red")
  assert reg.names() == ["round", "square"]
  assert "round" in reg and "oval" not in reg
  # A factory with **kwargs takes any key.
  assert reg.build({"name": "square", "anything": 1}, "rl.widget", section="S") == (
      "square", "S", {"anything": 1})


def test_unknown_name_lists_the_registered_names():
  reg = _widgets()
  with pytest.raises(ValueError, match=r"unknown widget 'oval'; registered: \['round', 'square'\]"):
    reg.get("oval")
  with pytest.raises(ValueError, match=r"unknown widget 'oval'; registered: \['round', 'square'\]"):
    reg.build({"name": "oval"}, "rl.widget", ctx=None)


def test_spec_without_name_is_an_error_naming_the_path():
  with pytest.raises(ValueError, match=r"config rl\.widget needs a 'name' \(one of \['round', "
                                       r"'square'\]\)"):
    _widgets().build({"size": 2}, "rl.widget", ctx=None)


def test_unknown_kwarg_names_the_config_path_and_the_valid_keys():
  reg = _widgets()
  with pytest.raises(ValueError, match=r"unknown config key\(s\) rl\.widget\.\['sise'\] for "
                                       r"widget 'round'; valid: \['color', 'size'\]"):
    reg.build({"name": "round", "sise": 2}, "rl.widget", ctx=None)
  # Arguments the loop passes (ctx, stage, section) are not config keys.
  with pytest.raises(ValueError, match=r"rl\.widget\.\['ctx'\]"):
    reg.check_kwargs("round", {"ctx": 1}, "rl.widget")
  reg.check_kwargs("round", {"size": 1, "color": "blue"}, "rl.widget")  # valid: no error


def test_double_registration_is_an_error():
  reg = _widgets()
  with pytest.raises(ValueError, match=r"widget 'round' is already registered"):
    reg.register("round")(lambda *, ctx: None)
  # The original stays registered.
  assert reg.build({"name": "round"}, "w", ctx=0) == ("round", 0, 1, "red")
