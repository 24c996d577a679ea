"""The data layer never imports TensorFlow: a fresh process imports it, builds tfds datasets
(ArrayRecord), reads them through grain (examples and packed documents) and checks sys.modules."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from rl_jax import tasks
    from rl_jax.data import builders, loader
    from rl_jax.projects.translate_r1 import corpus

    data_dir = sys.argv[1]
    task = tasks.make_task("arithmetic", num_operands=2, num_digits=1, train_size=8,
                           eval_size=2, data_dir=data_dir)
    assert len(task.train) == 8 and len(task.eval) == 2
    docs = builders.prepare(corpus.CipherCorpus, data_dir, corpus.corpus_config(0, 20, 0))
    sources = builders.prepare(builders.Arithmetic, data_dir,
                               builders.arithmetic_config(2, 1, 8, 2, 0))
    examples = loader.example_batches(
        sources["train"], lambda r, i: (np.asarray(r["operands"]),), batch_size=4,
        seed_words=(0,))
    packed = loader.packed_batches(
        docs["train"], lambda r, i: np.frombuffer(r["text"], np.uint8)[:8].astype(np.int32),
        batch_size=2, row_len=16, seed_words=(0,))
    assert next(examples)[0].shape == (4, 2) and next(packed)[0].shape == (2, 16)
    print("tensorflow" in sys.modules, sorted(m for m in sys.modules
                                              if m.split(".")[0] == "tensorflow"))
""")


def test_building_and_loading_never_imports_tensorflow(tmp_path):
  out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == "False []", out.stdout[-2000:]
