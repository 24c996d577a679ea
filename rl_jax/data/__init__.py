"""rl_jax.data: the data layer (docs/architecture.md "Data layer").

builders: tensorflow-datasets builders prepared as ArrayRecord files (GSM8K, the arithmetic world;
  projects add their own), never importing TensorFlow. loader: grain loaders with checkpointable
  iterator state, per-process shards and sequence packing. gsm8k: the strict GSM8K JSONL reader.
encoding: text <-> the slot layout. prompt_sources: RL prompt sources.
"""
