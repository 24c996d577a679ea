"""Test setup: 8 fake CPU devices (so sharding tests run anywhere), f32 matmuls, CPU only."""
import os

# Must run before jax is imported anywhere in the test session.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import importlib.util  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def load_config():
  """`load_config(name, arg="runlocal")`: configs/<name>.py's get_config(arg) as a plain dict."""
  def load(name: str, arg: str | None = "runlocal") -> dict:
    spec = importlib.util.spec_from_file_location(f"configs_{name}", REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # config files import only the installed package
    return module.get_config(arg).to_dict()
  return load


@pytest.fixture
def load_bench():
  """`load_bench(name)`: the module bench/<name>.py (bench/ is not a package; the module is
  registered in sys.modules before it runs, which dataclasses needs)."""
  def load(name: str):
    key = f"bench_{name}_under_test"
    if key not in sys.modules:
      spec = importlib.util.spec_from_file_location(key, REPO / "bench" / f"{name}.py")
      module = importlib.util.module_from_spec(spec)
      sys.modules[key] = module
      spec.loader.exec_module(module)
    return sys.modules[key]
  return load
