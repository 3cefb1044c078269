"""Shared fixtures: real tokenizers from the tiny preset, random-weight models built around them, and
the real tiny preset itself (loaded once per test session)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# examples/minilm.py holds the one copy of the RAG tests' sentence embeddings
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

# Hypothesis: a machine that once found a failing example replays it from its local .hypothesis/
# database on every later run. CI must not depend on such a database: with CI set, examples are
# derandomised (the same on every machine and run) and nothing is read from or saved to a database.
# Failures found elsewhere are kept as explicit @example cases, not in the database.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("SPECFUSE_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))
