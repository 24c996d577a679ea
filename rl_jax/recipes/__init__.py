"""Staged experiment pipelines (one module per paper reproduction)."""
