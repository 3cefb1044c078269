"""A serving process caps glibc's malloc arenas, so its memory stays flat under load (figures:
docs/performance.md, "The server under load"). The effect itself is a benchmark's; these check the call."""

from __future__ import annotations

import platform

import pytest

from specfuse_core.serve import ServeSettings, create_app
from specfuse_core.serve import app as app_module
from specfuse_core.serve import memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")


@glibc
def test_glibc_takes_the_arena_cap():
    assert memory.limit_malloc_arenas() is True


def test_a_c_library_without_mallopt_is_left_alone(monkeypatch):
    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda name: None)
    assert memory.limit_malloc_arenas() is False


def test_the_app_caps_arenas_when_it_is_made(monkeypatch, small_ensemble):
    calls = []
    monkeypatch.setattr(app_module, "limit_malloc_arenas", lambda: calls.append(True) or True)
    create_app(small_ensemble, ServeSettings(model_name="m"))
    assert calls == [True]
