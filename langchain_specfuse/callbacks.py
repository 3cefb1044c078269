"""Segment events on the chat model's own run: LangChain hands ``_stream`` no run manager from
``stream``/``astream``, so the run's id is fixed in the config first and a callback manager is built
whose parent is that run."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig, ensure_config


def model_run_callbacks(model: Any, run_manager: Any, stream_config: Any, manager_class: type) -> Any:
    """A callback manager whose parent run is this chat model's own run, so a custom event dispatched
    through it is reported on that run (LLM run managers have no ``get_child``).

    ``invoke``/``batch`` and ``stream_events(version="v3")`` hand the model its run manager. ``stream``
    and ``astream`` (so ``astream_events``) do not: :meth:`ChatSpecFuse.stream` fixes the run's id in
    the config beforehand and passes that config along (``stream_config``), and the manager is built
    from it the way LangChain builds the run's own. None: no run to report to.
    """
    if run_manager is not None:
        return manager_class(
            handlers=list(run_manager.handlers),
            inheritable_handlers=list(run_manager.inheritable_handlers),
            parent_run_id=run_manager.run_id,
            tags=list(run_manager.tags),
            inheritable_tags=list(run_manager.inheritable_tags),
            metadata=dict(run_manager.metadata),
            inheritable_metadata=dict(run_manager.inheritable_metadata),
        )
    if stream_config is None:
        return None
    manager = manager_class.configure(
        stream_config.get("callbacks"), model.callbacks, model.verbose, stream_config.get("tags"), model.tags,
        stream_config.get("metadata"), model.metadata,
    )
    manager.parent_run_id = stream_config["run_id"]
    return manager


def with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    """The call's config with the chat model run's id fixed in advance (LangChain uses a given
    ``run_id`` for the run it opens), so the segment events can name that run."""
    config = ensure_config(config)
    if config.get("run_id") is None:
        config["run_id"] = uuid.uuid4()
    return config
