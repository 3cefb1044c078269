"""Old import path: the token chooser lives in :mod:`specfuse_core.local.sampling` (it needs torch)."""

from .local.sampling import TokenChooser

__all__ = ["TokenChooser"]
