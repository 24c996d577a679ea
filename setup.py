"""rl_jax: JAX-native RL post-training for language models.

`kernels/` at the top level is installed as the subpackage `rl_jax.kernels` (package_dir), so
`import rl_jax.kernels` works and nothing clashes with other top-level "kernels" packages.
"""
import setuptools

_KERNEL_PACKAGES = [
    "rl_jax.kernels" + name[len("kernels"):]
    for name in setuptools.find_packages(include=["kernels", "kernels.*"])
]

setuptools.setup(
    name="rl_jax",
    version="0.1.0",
    description="JAX/TPU-native reinforcement-learning post-training of language models",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["rl_jax", "rl_jax.*"]) + _KERNEL_PACKAGES,
    package_dir={"rl_jax.kernels": "kernels"},
    package_data={"rl_jax": ["data/assets/*", "data/assets/**/*"]},
    include_package_data=True,
    # Lower bounds are the versions this code was tested with; upper bounds stop silent skew
    # across a JAX minor release (the anchors' top install pain).
    install_requires=[
        "jax>=0.10.2,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "chex>=0.1.92",
        "ml-collections>=1.1.0",
        "sentencepiece>=0.2.3",
        "absl-py>=2.1",
        "numpy>=2.0",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "safetensors>=0.6",
        "tokenizers>=0.21",
        "matplotlib>=3.8",
        "scikit-learn>=1.5",  # ROC AUC of the SWAP study (rl_jax/projects/swap)
        # Shopping MMLU's generation metrics, as the benchmark computes them (rl_jax/eval/).
        "rouge-score>=0.1.2",
        "sacrebleu>=2.4",
        # The data layer (rl_jax/data/): tfds builders written as ArrayRecord and read by grain,
        # never TensorFlow; tfds finds a builder's code path with importlib_resources.
        "tensorflow-datasets>=4.9.10",
        "grain>=0.2.18",
        "array-record>=0.8.6",
        "importlib-resources>=6.0",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5"],
        "hf": ["transformers>=4.51", "torch"],
        "tb": ["tensorboard>=2.15"],  # the viewer for the events every run writes
        # The PyTorch peers of bench/peers.py (HF generate, TRL's GRPOTrainer); tested with
        # torch 2.14.1, transformers 5.25.0, trl 1.16.0, accelerate 1.16.0, datasets 5.2.0.
        "bench": ["torch>=2.6", "transformers>=4.56.2", "trl>=1.16", "accelerate>=1.10.1",
                  "datasets>=4.7"],
    },
)
