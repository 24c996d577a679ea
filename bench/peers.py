"""rl_jax against its PyTorch peers on the same checkpoint: HF `generate` and TRL's GRPO step.

    pip install -e ".[bench]"                 # torch, transformers, trl, accelerate, datasets
    python bench/peers.py                     # both sections, full sizes (12 min on a 2-core
                                              # CPU: sampling 7, GRPO 5)
    python bench/peers.py --only sampling     # or --only grpo
    python bench/peers.py --reps 5            # timed calls / steps per row (default 3)
    python bench/peers.py --quick             # tiny sizes, well under a minute (what the test runs)

Without torch / transformers / trl the rl_jax side still runs and the peer cells read
"not installed" (CI has no torch). Run it on an otherwise idle machine: the first line prints
the load average (and the last line again); on 2 cores an outside load distorts torch's OpenMP
threads far more than XLA's pool (one such run measured HF 15x slower on a row, rl_jax 1.8x).

The model. One random-weight Qwen3 (full: vocab 8192, hidden 512, 8 layers, 8 query / 4 KV
heads, head_dim 64, SwiGLU 1536, tied embeddings, float32: 29.4M params) is written once into a
temp folder as a Hugging Face checkpoint: `config.json` (Qwen3ForCausalLM, model_type qwen3,
torch_dtype float32, no eos_token_id) + `model.safetensors` (rl_jax's
`weights.save_hf_checkpoint`), plus a word-level `tokenizer.json` over exactly 8192 pieces
(<pad> <unk> <s> </s>, then "w4".."w8191", split on spaces, nothing added on encode) and its
`tokenizer_config.json` (EOS </s>, pad <pad>). rl_jax loads it with `weights.load_hf_checkpoint`
/ `tokenizers.load_tokenizer`, transformers with `AutoModelForCausalLM.from_pretrained` /
`PreTrainedTokenizerFast.from_pretrained`. A prompt is 32 random words = 32 tokens on both sides
(printed). The sampling section first checks that both run the same model: f32 logits of 2
prompts (max abs difference), their argmax, and 16 greedy tokens per prompt must agree.

1. Sampling throughput: tokens/s = B * N generated tokens / wall time of one call (prefill,
   decode and the copy of the tokens to host numpy included). Prompt length 32; cases
   (N new tokens, batch B) = (64, 8), (256, 8), (256, 32); temperature 1, no top-k / top-p, no
   stop token, so each side generates exactly N tokens per row (checked).
   rl_jax: the jitted `rl_jax.sampling.generate.generate` (GenerateCfg(max_new_tokens=N,
   group_size=1, stop_ids=())), compiled ahead of time; it also records per-token log-probs,
   which the RL step needs and HF's generate does not compute.
   HF: `model.generate(do_sample=True, temperature=1, top_k=0, top_p=1, max_new_tokens=N)` under
   `torch.inference_mode()`: default dynamic KV cache, the attention transformers picks (printed:
   sdpa), no torch.compile, torch's default threads (printed).
   Per row both get one warm-up call, then `--reps` timed calls each, interleaved (the order
   swapped every rep, so machine load hits both alike); the best call of each is reported.
   A float32 table, then a bfloat16 one: parameters and compute in bf16 (rl_jax: model
   overrides param_dtype = dtype = "bfloat16"; HF: from_pretrained(dtype=torch.bfloat16); both
   cast the same f32 checkpoint).
   stream-bound tok/s = B / t_stream: a decode step must read every weight at least once, and
   t_stream is the best of 20 calls of a jitted sum over all parameter arrays (f32
   accumulation), i.e. a streaming read of the params at the bandwidth this machine gives it.
   "rl_jax % of bound" = rl_jax tok/s / that bound: at small B decoding is bandwidth-bound and
   100% the ceiling (attention over the cache, sampling and host work come on top); at larger B
   compute dominates and the share drops by design.
   dots-only tok/s = B / t_dots: t_dots is the best of 20 calls of one jitted program holding
   just the decode step's matrix products at batch B (every layer kernel and the unembedding
   times a [B, in] input, each weight read once; `dots_seconds`). No rl_jax decode can beat it
   on this backend: it is XLA's own dot throughput at these shapes, so a ratio to HF that
   dots-only tok/s / HF tok/s does not reach is out of reach whatever else is removed.

2. GRPO step: 16 prompts x G=8 samples, 32 prompt + 64 new tokens, one AdamW step over all 128
   completions, beta = 0 (no reference model), clip 0.2, group-std advantages, the same reward
   on both sides (`reward_of_text`: the fraction of odd-numbered words of the completion text,
   cheap and varied, so advantages are non-zero).
   rl_jax: the training loop's own RL step (`rl_jax.stages.rl.rl_iteration` over
   `build_context` / `build_rl` / `make_update_step`, as bench/rl_step.py) for
   configs/quickstart.py with model.hf_checkpoint = tokenizer = the checkpoint, a task registered
   here that draws the 32-word prompts, stages ("rl",), prompt_len 32, max_new_tokens 64,
   rl.prompts_per_step 16, rl.group_size 8, one epoch and mini-batch, beta 0, use_kl_loss False,
   timing=True (the update is blocked on). Row "defaults": logprob_impl and rl.num_microbatches
   as the config sets them; a row with logprob_impl=naive and one micro-batch is added when the
   defaults differ from that (one row when they coincide).
   TRL: `trl.GRPOTrainer` with GRPOConfig(num_generations=8, per_device_train_batch_size=128,
   gradient_accumulation_steps=1 -- so generation_batch_size = 128 = 16 x 8, one micro-batch
   and one optimizer step per generation, no old-log-prob pass --, max_completion_length=64,
   beta=0, loss_type="grpo", epsilon=0.2, scale_rewards="group", temperature=1, top_p=1,
   top_k=0, learning_rate 2e-4 constant, max_grad_norm 1, use_cpu=True, bf16=False,
   gradient_checkpointing=False, no logging / saving / reporting), a `datasets.Dataset` of
   prompt strings, the model and tokenizer objects from the checkpoint. TRL's own defaults would
   add bf16 autocast and gradient checkpointing (a recomputed forward: more work than rl_jax
   does); they are off so both do the same float32 work. TRL keeps its default optimizer
   (transformers' adamw_torch_fused, printed) and its loss path (transformers' fused LM-head
   log-prob + entropy, never the full [N, V] logits). EOS (</s>) ends a row on both sides (rare
   with random weights; "resp len" is the mean response length per side).
   Each side runs in its own subprocess; "peak RSS" is that process's VmHWM at its end (imports
   and compilation included). Not ru_maxrss: Linux carries a parent's peak over fork + exec
   into the child's ru_maxrss. The TRL process never imports jax, the rl_jax ones never torch
   (checked). The parent drives the processes one step at a time, alternating them (the order
   rotates every step); step 0 of each is a warm-up (compiles / first-call allocations) and is
   not timed, then `--reps` timed steps; medians are reported. Parts: rollout = prompts,
   sampling, detokenising and rewards (TRL: its `_generate_and_score_completions`, which also
   computes the advantages); update = rl_jax's `time/update_s` (`train_on_rollout`, blocked
   on) / TRL's step minus its rollout (loss forward, backward, optimizer, Trainer bookkeeping);
   s/step = the step's wall time. Ratios are rl_jax / TRL: time < 1 means rl_jax is faster,
   RSS < 1 means it needs less memory.

Same weights, shapes and token counts on both sides; what differs is each framework's own
sampling and training path. Numbers compare only within one run (the machine and versions are
printed first).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np  # jax is imported where used: the TRL child process never loads it (its RSS)

REPO = pathlib.Path(__file__).resolve().parents[1]
NOT_INSTALLED = "not installed"
PEER_PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets")
TASK_NAME = "bench_peers_words"
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")  # ids 0..3; words "w4".."w{V-1}" follow
SAMPLING_HEADER = ("params", "N new", "batch", "rl_jax tok/s", "HF tok/s", "rl_jax/HF",
                   "stream-bound tok/s", "rl_jax % of bound", "dots-only tok/s")
GRPO_HEADER = ("side", "s/step", "rollout s", "update s", "peak RSS GiB", "time vs TRL",
               "RSS vs TRL", "resp len")
_MSG = "@@ "  # prefix of the protocol lines a child writes on stdout


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The workload. model: ModelConfig fields of the checkpoint. cases: (new tokens, batch) of
  the sampling rows. grpo_*: prompts per step, samples per prompt, new tokens of the GRPO step.
  reps: timed sampling calls per side and row (best reported) and timed GRPO steps (median)."""
  model: dict
  prompt_len: int
  cases: tuple[tuple[int, int], ...]
  grpo_prompts: int
  grpo_group: int
  grpo_new_tokens: int
  reps: int
  stream_reps: int = 20
  check_new_tokens: int = 16


FULL = Sizes(model=dict(vocab_size=8192, hidden_size=512, num_layers=8, num_heads=8,
                        num_kv_heads=4, head_dim=64, intermediate_size=1536, max_seq_len=512),
             prompt_len=32, cases=((64, 8), (256, 8), (256, 32)), grpo_prompts=16, grpo_group=8,
             grpo_new_tokens=64, reps=3)
QUICK = Sizes(model=dict(vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=16, intermediate_size=128, max_seq_len=64),
              prompt_len=8, cases=((8, 2),), grpo_prompts=2, grpo_group=4, grpo_new_tokens=8,
              reps=1, stream_reps=5, check_new_tokens=8)


# ---------------------------------------------------------------------------------------------
# Peers: import, versions, machine.


def _shadowing_entries() -> list[str]:
  """sys.path entries that are this repository's root: its top-level `kernels/` folder (installed
  as `rl_jax.kernels`) would shadow Hugging Face's `kernels` package, which transformers imports."""
  root = os.path.realpath(REPO)
  return [p for p in sys.path if os.path.realpath(p or os.getcwd()) == root]


def import_peers():
  """(torch, transformers) or None when either is not installed.

  With the repository root on sys.path (PYTHONPATH=<repo>, or the cwd), `import kernels` would
  find the repo's `kernels/` instead of the HF `kernels` package transformers needs, so the HF
  one is imported first with those entries left out (a no-op when it is not installed)."""
  if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
    return None
  loaded = sys.modules.get("kernels")
  if loaded is not None and os.path.realpath(getattr(loaded, "__file__", "") or "").startswith(
      os.path.realpath(REPO) + os.sep):
    for name in [n for n in sys.modules if n == "kernels" or n.startswith("kernels.")]:
      del sys.modules[name]  # rl_jax imports its kernels as rl_jax.kernels, never as `kernels`
  shadow = _shadowing_entries()
  if shadow and "kernels" not in sys.modules:
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in shadow]
    try:
      import kernels  # noqa: F401  (Hugging Face's, see above)
    except Exception:  # not installed (older transformers do without it)
      pass
    finally:
      sys.path[:] = saved
  try:
    import torch
    import transformers
  except ImportError:
    return None
  transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars in the tables
  return torch, transformers


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return NOT_INSTALLED


def trl_available() -> bool:
  return all(importlib.util.find_spec(p) is not None for p in PEER_PACKAGES)


def load_average() -> str:
  """The 1-minute load average: other work on the machine distorts both sides (on 2 cores torch's
  OpenMP threads suffer far more from a busy core than XLA's pool: a run with an outside load
  measured HF 15x slower, rl_jax 1.8x), so the run prints it at the start and the end."""
  return (f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg")
          else "load average n/a")


def machine_lines() -> list[str]:
  cpu = platform.processor() or platform.machine()
  with contextlib.suppress(OSError):
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    cpu = names[0] if names else cpu
  mem = ""
  with contextlib.suppress(OSError, ValueError, IndexError):
    with open("/proc/meminfo", encoding="utf-8") as f:
      mem = f", {int(f.readline().split()[1]) / 2**20:.1f} GiB RAM"
  nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  import jax
  versions = ", ".join(f"{p} {_version(p)}" for p in ("jax", "jaxlib", "flax", "optax") +
                       PEER_PACKAGES)
  return [f"machine: {platform.platform()}, CPU {cpu}, nproc {nproc}{mem}, python "
          f"{platform.python_version()}, {load_average()}",
          f"versions: {versions}; jax backend {jax.default_backend()}, "
          f"{len(jax.devices())} device(s)"]


# ---------------------------------------------------------------------------------------------
# The checkpoint, tokenizer and prompts.


def model_config(sizes: Sizes):
  from rl_jax.models.config import ModelConfig
  return ModelConfig(**sizes.model, tie_embeddings=True, param_dtype="float32", dtype="float32")


def word(i: int) -> str:
  return SPECIALS[i] if i < len(SPECIALS) else f"w{i}"


def write_tokenizer(path: str, vocab_size: int) -> None:
  """A word-level `tokenizer.json` over exactly `vocab_size` pieces (split on whitespace, no
  special tokens added on encode) and the `tokenizer_config.json` naming EOS / pad / unk."""
  import tokenizers
  from tokenizers import models, pre_tokenizers
  tok = tokenizers.Tokenizer(models.WordLevel({word(i): i for i in range(vocab_size)},
                                              unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.add_special_tokens([tokenizers.AddedToken(s, special=True) for s in SPECIALS])
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>",
               "pad_token": "<pad>", "unk_token": "<unk>", "bos_token": None,
               "model_max_length": 4096, "padding_side": "left"}, f, indent=1)


def write_checkpoint(path: str, sizes: Sizes, seed: int = 0):
  """Random Qwen3 params (rl_jax's init) saved as an HF checkpoint + tokenizer; returns cfg."""
  import jax
  from rl_jax.models import qwen3, weights
  cfg = model_config(sizes)
  params = qwen3.init_params(cfg, jax.random.key(seed))
  weights.save_hf_checkpoint(path, params, cfg)
  write_tokenizer(path, cfg.vocab_size)
  return cfg


def prompt_ids(rng: np.random.Generator, batch: int, length: int, vocab: int) -> np.ndarray:
  """[batch, length] int32 word ids (never a special token)."""
  return rng.integers(len(SPECIALS), vocab, size=(batch, length), dtype=np.int64).astype(np.int32)


def ids_to_text(ids) -> str:
  return " ".join(word(int(i)) for i in ids)


def reward_of_text(text: str) -> float:
  """The GRPO reward of both sides: the fraction of odd-numbered words in the completion."""
  words = text.split()
  odd = sum(1 for w in words if w[1:].isdigit() and int(w[1:]) % 2)
  return odd / max(len(words), 1)


# ---------------------------------------------------------------------------------------------
# Section 1: sampling.


def _best(fn, reps: int) -> float:
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def stream_seconds(params, reps: int) -> tuple[float, int]:
  """(best seconds to read every parameter once, bytes read): a jitted sum over all arrays."""
  import jax
  import jax.numpy as jnp
  sum_all = jax.jit(lambda p: sum(jnp.sum(x, dtype=jnp.float32) for x in jax.tree.leaves(p)))
  jax.block_until_ready(sum_all(params))
  nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
  return _best(lambda: jax.block_until_ready(sum_all(params)), reps), nbytes


def dots_seconds(params, cfg, batch: int, reps: int) -> float:
  """Best seconds of one decode step's matrix products alone, as XLA runs them.

  Every kernel of every layer and the unembedding multiplied by a [batch, in] input, in one
  jitted program that reads each weight once (the step's dots, nothing else: no attention,
  norms or sampling). batch / this time is the tokens/s a decode step made only of XLA's dots
  would reach: on CPU the ceiling for any rl_jax decode, whatever else is removed.
  """
  import jax
  import jax.numpy as jnp
  from rl_jax.models import qwen3
  # One array per layer and kernel, split before the jit (slicing the stacked [L, in, out]
  # arrays inside it would add a copy of the weights to every call).
  kernels = [jnp.array(x[layer]) for x in jax.tree.leaves(params["layers"]) if x.ndim == 3
             for layer in range(x.shape[0])]
  dtype = kernels[0].dtype
  head = qwen3.unembedding(params, cfg).astype(dtype)

  # Inputs are arguments, not constants: XLA folds a dot of a broadcast constant into a
  # reduction over the weight, which is not the work of a decode step.
  inputs = {d: jnp.asarray(np.random.default_rng(d).standard_normal((batch, d)), dtype)
            for d in sorted({k.shape[0] for k in kernels} | {head.shape[0]})}

  def step_dots(kernels, head, inputs):
    total = jnp.zeros((), jnp.float32)
    for kernel in kernels:
      total += jnp.sum(jnp.dot(inputs[kernel.shape[0]], kernel,
                               preferred_element_type=jnp.float32))
    return total + jnp.sum(jnp.dot(inputs[head.shape[0]], head,
                                   preferred_element_type=jnp.float32))

  compiled = jax.jit(step_dots).lower(kernels, head, inputs).compile()
  jax.block_until_ready(compiled(kernels, head, inputs))
  return _best(lambda: jax.block_until_ready(compiled(kernels, head, inputs)), reps)


def load_hf_model(peers, path: str, dtype: str):
  torch, transformers = peers
  model = transformers.AutoModelForCausalLM.from_pretrained(
      path, dtype=getattr(torch, dtype))
  return model.eval()


def hf_generate(peers, model, ids: np.ndarray, new_tokens: int, greedy: bool = False):
  """HF `generate` of exactly `new_tokens` tokens per row (no EOS in the model's config, so
  nothing stops a row); returns the [B, N] new tokens as numpy."""
  torch, _ = peers
  input_ids = torch.from_numpy(ids.astype(np.int64))
  sampling = (dict(do_sample=False) if greedy else
              dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0))
  with torch.inference_mode():
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
                         **sampling)
  if out.shape != (ids.shape[0], ids.shape[1] + new_tokens):
    raise RuntimeError(f"HF generate returned shape {tuple(out.shape)}, expected "
                       f"{(ids.shape[0], ids.shape[1] + new_tokens)}")
  return out[:, ids.shape[1]:].numpy()


def rljax_generate_fn(params, cfg, ids: np.ndarray, new_tokens: int, key, temperature: float):
  """A compiled rl_jax `generate` call on `ids` (all valid, no stop ids) -> [B, N] tokens."""
  import jax
  import jax.numpy as jnp
  from rl_jax.sampling.generate import GenerateCfg, generate
  from rl_jax.types import SampleKnobs
  tokens = jnp.asarray(ids)
  valid = jnp.ones(ids.shape, bool)
  knobs = SampleKnobs.create(temperature=temperature)
  gen_cfg = GenerateCfg(max_new_tokens=new_tokens, group_size=1, stop_ids=(), pad_id=0)
  compiled = generate.lower(params, tokens, valid, key, knobs, model_cfg=cfg,
                            cfg=gen_cfg).compile()
  prompt_len = ids.shape[1]

  def call():  # returns host numpy, as `hf_generate` does
    rollout = jax.block_until_ready(compiled(params, tokens, valid, key, knobs))
    return np.asarray(rollout.tokens_BxL)[:, prompt_len:]
  return call


def hf_agreement(peers, path: str, sizes: Sizes, seed: int = 0) -> dict:
  """The two frameworks run the same model: f32 prefill logits of rl_jax vs HF on 2 prompts
  (max abs difference, and the logits' scale) and `check_new_tokens` greedy tokens (equal?)."""
  import jax
  import jax.numpy as jnp
  from rl_jax.models import qwen3, weights
  torch, _ = peers
  cfg, params = weights.load_hf_checkpoint(path)
  ids = prompt_ids(np.random.default_rng(seed + 7), 2, sizes.prompt_len, cfg.vocab_size)
  valid = jnp.ones(ids.shape, bool)
  hidden, _ = qwen3.forward(params, jnp.asarray(ids), qwen3.positions_from_mask(valid), valid,
                            cfg=cfg)
  ours = np.asarray(qwen3.logits(params, hidden, cfg=cfg), np.float32)
  model = load_hf_model(peers, path, "float32")
  with torch.inference_mode():
    theirs = model(input_ids=torch.from_numpy(ids.astype(np.int64))).logits.float().numpy()
  n = sizes.check_new_tokens
  ours_greedy = np.asarray(rljax_generate_fn(params, cfg, ids, n, jax.random.key(0), 0.0)())
  theirs_greedy = hf_generate(peers, model, ids, n, greedy=True)
  greedy_equal = bool(np.array_equal(ours_greedy, theirs_greedy))
  tie_margin = None
  if not greedy_equal:
    # The first step where the greedy paths part: if HF's own logits there put the two choices
    # within float32 noise of each other (a random model's logits are nearly flat), the paths
    # differ by a near-tie, not by a different model. The margin is reported either way.
    row, step = np.argwhere(ours_greedy != theirs_greedy)[0]
    prefix = np.concatenate([ids[row], theirs_greedy[row, :step]])[None].astype(np.int64)
    with torch.inference_mode():
      last = model(input_ids=torch.from_numpy(prefix)).logits.float().numpy()[0, -1]
    tie_margin = float(abs(last[ours_greedy[row, step]] - last[theirs_greedy[row, step]]))
    greedy_equal = tie_margin <= 1e-5 * max(1.0, float(np.max(np.abs(last))))
  return dict(max_abs_logit_diff=float(np.max(np.abs(ours - theirs))),
              logit_scale=float(np.max(np.abs(theirs))),
              next_token_equal=bool(np.array_equal(ours.argmax(-1), theirs.argmax(-1))),
              greedy_equal=greedy_equal, tie_margin=tie_margin,
              greedy_tokens=int(ours_greedy.size), rljax_greedy=ours_greedy,
              hf_greedy=theirs_greedy)


def _cell(value, fmt: str) -> str:
  return NOT_INSTALLED if value is None else format(value, fmt)


def sampling_row_text(r: dict) -> str:
  ratio = None if r["hf_tok_s"] is None else r["rljax_tok_s"] / r["hf_tok_s"]
  return (f"| {r['dtype']} | {r['new_tokens']} | {r['batch']} | {r['rljax_tok_s']:.0f} | "
          f"{_cell(r['hf_tok_s'], '.0f')} | "
          f"{'n/a' if ratio is None else format(ratio, '.2f')} | {r['bound_tok_s']:.0f} | "
          f"{100 * r['rljax_tok_s'] / r['bound_tok_s']:.1f}% | {r['dots_tok_s']:.0f} |")


def run_sampling(sizes: Sizes, path: str, peers, reps: int, seed: int) -> list[dict]:
  import jax
  from rl_jax.models import weights
  print("\n## Sampling: tokens/s, prompt 32 tokens, temperature 1, no stop token"
        if sizes is FULL else "\n## Sampling: tokens/s (quick sizes)")
  print(f"prompt length {sizes.prompt_len}; best of {reps} interleaved timed calls per side and "
        "row after one warm-up call each (rl_jax compiled ahead of time); HF: "
        + ("not installed" if peers is None else
           f"generate(do_sample=True, top_k=0, top_p=1.0), torch threads "
           f"{peers[0].get_num_threads()}"))
  if peers is not None:
    a = hf_agreement(peers, path, sizes, seed)
    print(f"same model check (f32, 2 prompts): max |logit diff| rl_jax vs HF "
          f"{a['max_abs_logit_diff']:.2e} (logits up to {a['logit_scale']:.1f}); next-token "
          f"argmax equal: {'yes' if a['next_token_equal'] else 'NO'}; {a['greedy_tokens']} "
          f"greedy tokens equal: {'yes' if a['greedy_equal'] else 'NO'}"
          + ("" if a["tie_margin"] is None else
             f" (paths part at a near-tie: HF logit margin {a['tie_margin']:.1e})"))
  rows = []
  for dtype in ("float32", "bfloat16"):
    overrides = {} if dtype == "float32" else dict(param_dtype="bfloat16", dtype="bfloat16")
    cfg, params = weights.load_hf_checkpoint(path, **overrides)
    hf_model = None if peers is None else load_hf_model(peers, path, dtype)
    attn = ("" if hf_model is None else
            f"; HF attention {hf_model.config._attn_implementation}")
    t_stream, nbytes = stream_seconds(params, sizes.stream_reps)
    print(f"{dtype} params: {cfg.num_params() / 1e6:.1f}M, {nbytes / 2**20:.0f} MiB, streamed "
          f"once in {t_stream * 1e3:.2f} ms (best of {sizes.stream_reps}, "
          f"{nbytes / t_stream / 1e9:.1f} GB/s){attn}")
    print("| " + " | ".join(SAMPLING_HEADER) + " |\n|---|" + "---:|" * (len(SAMPLING_HEADER) - 1))
    rng = np.random.default_rng(seed)
    for i, (new_tokens, batch) in enumerate(sizes.cases):
      ids = prompt_ids(rng, batch, sizes.prompt_len, cfg.vocab_size)
      ours = rljax_generate_fn(params, cfg, ids, new_tokens, jax.random.key(seed + i), 1.0)
      calls = {"rljax": ours}
      if hf_model is not None:
        peers[0].manual_seed(seed + i)
        calls["hf"] = lambda: hf_generate(peers, hf_model, ids, new_tokens)
      for name, fn in calls.items():  # warm-up (and a shape check) of each side
        out = np.asarray(fn())
        assert out.shape == (batch, new_tokens), (name, out.shape)
      best = {name: float("inf") for name in calls}
      for rep in range(reps):
        order = list(calls) if rep % 2 == 0 else list(calls)[::-1]
        for name in order:
          t0 = time.perf_counter()
          calls[name]()
          best[name] = min(best[name], time.perf_counter() - t0)
      generated = batch * new_tokens
      row = dict(dtype=dtype, new_tokens=new_tokens, batch=batch,
                 rljax_tok_s=generated / best["rljax"],
                 hf_tok_s=generated / best["hf"] if "hf" in best else None,
                 bound_tok_s=batch / t_stream, rljax_s=best["rljax"], hf_s=best.get("hf"),
                 stream_s=t_stream,
                 dots_tok_s=batch / dots_seconds(params, cfg, batch, sizes.stream_reps))
      rows.append(row)
      print(sampling_row_text(row), flush=True)
    del hf_model
  return rows


# ---------------------------------------------------------------------------------------------
# Section 2: GRPO step, each side in its own process.


def _register_task() -> None:
  """Registers task TASK_NAME: problems are tuples of `prompt_words` word ids; the prompt is
  their text (one token per word), the reward `reward_of_text`."""
  from rl_jax import tasks
  if TASK_NAME in tasks.TASKS.names():
    return

  @tasks.TASKS.register(TASK_NAME)
  def words_task(*, vocab_size: int, prompt_words: int, train_size: int = 64, eval_size: int = 8,
                 seed: int = 0):
    rng = np.random.default_rng(seed)
    draw = lambda n, r: [tuple(int(i) for i in row)
                         for row in prompt_ids(r, n, prompt_words, vocab_size)]
    return tasks.TaskData(TASK_NAME, draw(train_size, rng), draw(eval_size, rng),
                          prompt_fn=ids_to_text, completion_fn=lambda p: "",
                          reward_fn=lambda p, text: reward_of_text(text), rl_sampler=draw)


def _load_quickstart():
  spec = importlib.util.spec_from_file_location("bench_peers_quickstart",
                                                REPO / "configs" / "quickstart.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def quickstart_defaults() -> tuple[str, int]:
  """(logprob_impl, rl.num_microbatches) as configs/quickstart.py sets them."""
  c = _load_quickstart().get_config(None)
  return str(c.logprob_impl), int(c.rl.num_microbatches)


def rljax_experiment(spec: dict):
  """The quickstart config turned into this benchmark's GRPO step (module docstring)."""
  from rl_jax import experiment
  _register_task()
  c = _load_quickstart().get_config(None).to_dict()
  ckpt = spec["checkpoint"]
  c.update(tokenizer=ckpt, prompt_len=spec["prompt_len"], max_new_tokens=spec["new_tokens"],
           stages=("rl",), timing=True, seed=spec["seed"],
           task={"name": TASK_NAME, "vocab_size": spec["vocab_size"],
                 "prompt_words": spec["prompt_len"]})
  c["model"]["hf_checkpoint"] = ckpt
  c["rl"].update(steps=spec["steps"], prompts_per_step=spec["prompts"], group_size=spec["group"],
                 num_epochs=1, num_minibatches=1, beta=0.0, use_kl_loss=False,
                 dynamic_sampling=False, temperature=1.0, top_p=1.0, top_k=0,
                 drop_zero_advantage=0)
  if spec["variant"] == "naive":
    c["logprob_impl"] = "naive"
    c["rl"]["num_microbatches"] = 1
  c["eval"].update(every=0, at_stage_end=False)
  c["checkpoint"]["every"] = 0
  return experiment.from_config_dict(c)


def _send(obj: dict) -> None:
  sys.stdout.write(_MSG + json.dumps(obj) + "\n")
  sys.stdout.flush()


def _wait_go() -> None:
  line = sys.stdin.readline()
  if line.strip() != "go":
    raise SystemExit(f"expected 'go' from the parent, got {line!r}")


def _peak_rss_gib() -> float:
  """This process's peak resident set size in GiB: VmHWM of /proc/self/status (Linux).

  Not `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries the parent's peak over fork + exec into
  the child's ru_maxrss, so every child would report at least the parent's peak (checked: a
  parent holding 2 GiB makes an empty child report 2.03 GiB; VmHWM says 13 MiB). ru_maxrss is
  the fallback where /proc is missing."""
  with contextlib.suppress(OSError, ValueError, IndexError):
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 2**20  # kB
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child_rljax(spec: dict) -> None:
  """One GRPO step per 'go' from the parent: the RL stage's own iteration."""
  import jax
  from rl_jax import sharding
  from rl_jax.data.encoding import encode_prompts
  from rl_jax.stages import rl as rl_stage
  from rl_jax.stages.context import build_context
  from rl_jax.update import init_train_state, make_update_step
  with tempfile.TemporaryDirectory(prefix="bench_peers_rljax_") as workdir:
    exp = rljax_experiment(spec)
    ctx = build_context(exp, workdir, show_progress=False)
    setup = rl_stage.build_rl(ctx, exp.rl)
    state = sharding.shard_train_state(init_train_state(ctx.init_params, setup.update_cfg),
                                       ctx.mesh)
    setup.step_fn = make_update_step(setup.update_cfg,
                                     sharding.state_shardings(state, ctx.mesh))
    part_state = setup.init_part_state()
    problems, _ = setup.source.sample(part_state["source"], 4, 0, 0)
    _, valid = encode_prompts(ctx.tokenizer, [ctx.task.prompt_fn(p) for p in problems],
                              exp.prompt_len)
    _send({"event": "ready", "prompt_tokens": int(valid.sum(1).min()),
           "logprob_impl": exp.logprob_impl,
           "num_microbatches": setup.update_cfg.num_microbatches,  # resolved (0 = by memory)
           "params": ctx.model_cfg.num_params(), "devices": len(jax.devices())})
    key = ctx.stage_key("rl")
    for step in range(spec["steps"]):
      _wait_go()
      t0 = time.perf_counter()
      state, part_state, m = rl_stage.rl_iteration(setup, state, None, part_state, step,
                                                   jax.random.fold_in(key, step))
      total = time.perf_counter() - t0
      _send({"event": "step", "rollout": m["time/rollout_s"], "update": m["time/update_s"],
             "total": total, "len_mean": float(m["rollout/len_mean"])})
  _send({"event": "done", "rss_gib": _peak_rss_gib(), "other_framework_loaded":
         "torch" in sys.modules})


def child_trl(spec: dict) -> None:
  """One TRL GRPOTrainer optimizer step per 'go' from the parent (a callback waits for it)."""
  peers = import_peers()
  if peers is None:
    raise SystemExit("torch / transformers not installed")
  torch, transformers = peers
  import datasets
  import trl
  torch.manual_seed(spec["seed"])
  ckpt = spec["checkpoint"]
  tok = transformers.PreTrainedTokenizerFast.from_pretrained(ckpt)
  model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
  rng = np.random.default_rng(spec["seed"])
  n = spec["prompts"]
  texts = [ids_to_text(row) for row in prompt_ids(rng, n * spec["steps"], spec["prompt_len"],
                                                  spec["vocab_size"])]
  dataset = datasets.Dataset.from_dict({"prompt": texts})

  def odd_word_fraction(completions, **_):
    return [reward_of_text(c) for c in completions]

  timing = {"rollout": 0.0, "prompt_tokens": []}

  class TimedGRPOTrainer(trl.GRPOTrainer):
    def _generate_and_score_completions(self, inputs):
      t0 = time.perf_counter()
      out = super()._generate_and_score_completions(inputs)
      timing["rollout"] += time.perf_counter() - t0
      timing["prompt_tokens"].append(int(out["prompt_mask"].sum(1).min()))
      return out

  class Gate(transformers.TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
      _wait_go()
      timing["rollout"], timing["t0"] = 0.0, time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
      total = time.perf_counter() - timing["t0"]
      lengths = trainer._metrics["train"].get("completions/mean_length", [float("nan")])
      _send({"event": "step", "rollout": timing["rollout"], "update": total - timing["rollout"],
             "total": total, "len_mean": float(lengths[-1]),
             "prompt_tokens": timing["prompt_tokens"][-1]})

  with tempfile.TemporaryDirectory(prefix="bench_peers_trl_") as out_dir:
    args = trl.GRPOConfig(
        output_dir=out_dir, use_cpu=True, seed=spec["seed"], max_steps=spec["steps"],
        per_device_train_batch_size=n * spec["group"], gradient_accumulation_steps=1,
        num_generations=spec["group"], max_completion_length=spec["new_tokens"],
        beta=0.0, loss_type="grpo", epsilon=0.2, scale_rewards="group", num_iterations=1,
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=2e-4, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, bf16=False, fp16=False,
        gradient_checkpointing=False, report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        log_completions=False)
    trainer = TimedGRPOTrainer(model=model, reward_funcs=odd_word_fraction, args=args,
                               train_dataset=dataset, processing_class=tok, callbacks=[Gate()])
    _send({"event": "ready", "prompt_tokens": len(tok(texts[0])["input_ids"]),
           "params": sum(p.numel() for p in model.parameters()),
           "torch_threads": torch.get_num_threads(),
           "optim": str(getattr(args.optim, "value", args.optim)),
           "attn": str(model.config._attn_implementation)})
    trainer.train()
  _send({"event": "done", "rss_gib": _peak_rss_gib(), "other_framework_loaded":
         "jax" in sys.modules})


class Child:
  """A child process of this script speaking the `_MSG` line protocol on stdin / stdout."""

  def __init__(self, name: str, kind: str, spec: dict, log_dir: str):
    self.name = name
    self.log_path = os.path.join(log_dir, f"{kind}_{len(os.listdir(log_dir))}.log")
    self._log = open(self.log_path, "w", encoding="utf-8")
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    self.proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", kind, "--spec", json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)

  def receive(self, event: str) -> dict:
    while True:
      line = self.proc.stdout.readline()
      if not line:
        self.proc.wait()
        self._log.flush()
        with open(self.log_path, encoding="utf-8") as f:
          tail = "".join(f.readlines()[-30:])
        raise RuntimeError(f"{self.name} process exited ({self.proc.returncode}) before "
                           f"'{event}'; the end of its stderr:\n{tail}")
      if line.startswith(_MSG):
        msg = json.loads(line[len(_MSG):])
        if msg.get("event") != event:
          raise RuntimeError(f"{self.name}: expected '{event}', got {msg}")
        return msg

  def step(self) -> dict:
    self.proc.stdin.write("go\n")
    self.proc.stdin.flush()
    return self.receive("step")

  def close(self) -> None:
    with contextlib.suppress(Exception):
      self.proc.stdin.close()
    if self.proc.poll() is None:
      try:
        self.proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self._log.close()


def grpo_variants() -> list[tuple[str, str]]:
  """(row label, variant) of the rl_jax rows: the config's defaults, and naive log-probs with
  one micro-batch unless that is what the defaults are."""
  impl, microbatches = quickstart_defaults()
  if (impl, microbatches) == ("naive", 1):
    return [("rl_jax (defaults: naive log-prob, 1 micro-batch)", "defaults")]
  batches = ("micro-batches by memory" if microbatches == 0 else
             f"{microbatches} micro-batch{'es' if microbatches > 1 else ''}")
  return [(f"rl_jax (defaults: {impl} log-prob, {batches})", "defaults"),
          ("rl_jax (naive log-prob, 1 micro-batch)", "naive")]


def grpo_row_text(r: dict, trl_row: dict | None) -> str:
  if r.get("total") is None:
    return (f"| {r['label']} | {NOT_INSTALLED} | {NOT_INSTALLED} | {NOT_INSTALLED} | "
            f"{NOT_INSTALLED} | n/a | n/a | n/a |")
  ok = trl_row is not None and trl_row.get("total") is not None and r is not trl_row
  # 3 significant digits: a tiny --quick step can be 100x faster than TRL's (0.012, not 0.01)
  vs_time = f"{r['total'] / trl_row['total']:.3g}" if ok else ("1.00" if r is trl_row else "n/a")
  vs_rss = f"{r['rss_gib'] / trl_row['rss_gib']:.3g}" if ok else ("1.00" if r is trl_row else "n/a")
  secs = lambda x: f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"  # quick steps take milliseconds
  return (f"| {r['label']} | {secs(r['total'])} | {secs(r['rollout'])} | {secs(r['update'])} | "
          f"{r['rss_gib']:.2f} | {vs_time} | {vs_rss} | {r['len_mean']:.1f} |")


def run_grpo(sizes: Sizes, path: str, reps: int, seed: int, with_trl: bool) -> list[dict]:
  steps = 1 + reps  # step 0 warms up (compiles) and is not timed
  spec = dict(checkpoint=path, prompt_len=sizes.prompt_len, new_tokens=sizes.grpo_new_tokens,
              prompts=sizes.grpo_prompts, group=sizes.grpo_group,
              vocab_size=sizes.model["vocab_size"], steps=steps, seed=seed)
  print(f"\n## GRPO step: {sizes.grpo_prompts} prompts x G={sizes.grpo_group}, prompt "
        f"{sizes.prompt_len} + {sizes.grpo_new_tokens} new tokens, one AdamW step, beta 0, one "
        "process per side")
  rows = [dict(label=label, variant=v) for label, v in grpo_variants()]
  trl_row = dict(label="TRL GRPOTrainer", variant="trl")
  children: dict[str, Child] = {}
  with tempfile.TemporaryDirectory(prefix="bench_peers_logs_") as log_dir:
    try:
      for r in rows:
        children[r["label"]] = Child(r["label"], "rljax", {**spec, "variant": r["variant"]},
                                     log_dir)
      if with_trl:
        children[trl_row["label"]] = Child(trl_row["label"], "trl", spec, log_dir)
      ready = {name: c.receive("ready") for name, c in children.items()}
      times = {name: [] for name in children}
      names = list(children)
      for step in range(steps):
        k = step % len(names)
        for name in names[k:] + names[:k]:  # the order rotates every step
          times[name].append(children[name].step())
      done = {name: c.receive("done") for name, c in children.items()}
    finally:
      for c in children.values():
        c.close()
  for r in rows + [trl_row]:
    name = r["label"]
    if name not in times:
      continue
    timed = times[name][1:]
    r.update({p: statistics.median(t[p] for t in timed) for p in ("rollout", "update", "total")})
    r.update(len_mean=statistics.mean(t["len_mean"] for t in times[name]),
             rss_gib=done[name]["rss_gib"], ready=ready[name])
  first = rows[0]["label"]
  for r in rows:  # the micro-batch count the defaults resolved to
    if "by memory" in r["label"] and "ready" in r:
      r["label"] = r["label"].replace("by memory", f"by memory: {r['ready']['num_microbatches']}")
  prompt_tokens = [f"rl_jax {ready[first]['prompt_tokens']}"]
  if with_trl:
    prompt_tokens.append(f"TRL {times[trl_row['label']][0]['prompt_tokens']}")
  trl_info = (f"; TRL: optimizer {ready[trl_row['label']]['optim']}, attention "
              f"{ready[trl_row['label']]['attn']}, torch threads "
              f"{ready[trl_row['label']]['torch_threads']}" if with_trl else
              f"; TRL: {NOT_INSTALLED}")
  print(f"model {ready[first]['params'] / 1e6:.1f}M params; tokens per prompt: "
        f"{', '.join(prompt_tokens)}; median of {reps} interleaved timed steps after 1 warm-up "
        f"step per side" + trl_info)
  mixed = [name for name, d in done.items() if d["other_framework_loaded"]]
  if mixed:
    print(f"WARNING: the other framework was loaded in {mixed}: their RSS includes it")
  print("| " + " | ".join(GRPO_HEADER) + " |\n|---|" + "---:|" * (len(GRPO_HEADER) - 1))
  ref = trl_row if with_trl else None
  for r in rows + [trl_row]:
    print(grpo_row_text(r, ref))
  return rows + [trl_row]


# ---------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
  value = int(text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
  return value


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", choices=("sampling", "grpo"), default=None,
                      help="run one section (default: both)")
  parser.add_argument("--reps", type=_positive, default=None,
                      help="timed calls per sampling row (best) and timed GRPO steps (median); "
                           "default 3, quick 1")
  parser.add_argument("--quick", action="store_true", help="tiny sizes, under a minute (the test)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--child", choices=("rljax", "trl"), help=argparse.SUPPRESS)
  parser.add_argument("--spec", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    (child_rljax if args.child == "rljax" else child_trl)(json.loads(args.spec))
    return {}
  sizes = QUICK if args.quick else FULL
  reps = args.reps or sizes.reps
  start = time.perf_counter()
  for line in machine_lines():
    print(line)
  peers = import_peers() if args.only != "grpo" else None
  with_trl = trl_available()
  result: dict[str, Any] = {"sampling": None, "grpo": None}
  with tempfile.TemporaryDirectory(prefix="bench_peers_ckpt_") as path:
    cfg = write_checkpoint(path, sizes, args.seed)
    print(f"checkpoint: random-weight Qwen3 written once as HF safetensors (vocab "
          f"{cfg.vocab_size}, hidden {cfg.hidden_size}, {cfg.num_layers} layers, "
          f"{cfg.num_heads}/{cfg.num_kv_heads} heads x {cfg.head_dim}, mlp "
          f"{cfg.intermediate_size}, tied, float32): {cfg.num_params() / 1e6:.1f}M params")
    if args.only in (None, "sampling"):
      result["sampling"] = run_sampling(sizes, path, peers, reps, args.seed)
    if args.only in (None, "grpo"):
      result["grpo"] = run_grpo(sizes, path, reps, args.seed, with_trl)
  print(f"\nwall time of this run: {time.perf_counter() - start:.0f} s ({load_average()} at the "
        "end)")
  return result


if __name__ == "__main__":
  main()
