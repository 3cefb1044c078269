"""Shared fixtures: real tokenizers from the tiny preset, random-weight models built around them, and
the real tiny preset itself (loaded once per test session)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
