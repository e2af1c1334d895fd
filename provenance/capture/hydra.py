"""The Hydra adapter: the composed config, the files it was composed from, and the overrides.

Hydra hands each job its config through ``HydraConfig.set_config``, which is wrapped here, so a
run around ``@hydra.main`` hears the job's config; a run inside it (the decorator under
``@hydra.main``, the usual place) takes it from the ``DictConfig`` it is called with. Hydra's
own argument parser is not the script's CLI and is never recorded as one.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from provenance import capture

# How many jobs this context has heard of: a Hydra call that heard none ran no task.
_jobs: ContextVar[int] = ContextVar("provenance_hydra_jobs", default=0)


class NoJob(Exception):
    """Hydra ran no task (``--cfg``, ``--info``, shell completion): there is nothing to record."""


def patch() -> None:
    """Wrap ``HydraConfig.set_config``, which every Hydra job passes its composed config to, and
    the call behind ``@hydra.main``, to know when it ran no job at all."""
    capture.wrap(HydraConfig, "set_config", _set_config)
    capture.wrap(sys.modules["hydra.main"], "_run_hydra", _run_hydra)


def started(
    listener: capture.ParseListener, given: tuple[tuple[Any, ...], Mapping[str, Any]]
) -> None:
    """Report the job's config when the run starts inside a Hydra task function."""
    if not HydraConfig.initialized():
        return
    args, kwargs = given
    task = next((a for a in (*args, *kwargs.values()) if isinstance(a, DictConfig)), None)
    if task is not None:
        _report(listener, HydraConfig.get(), task)


def ignores(parser: argparse.ArgumentParser) -> bool:
    """Whether ``parser`` is Hydra's own (``--hydra-help``), which parses overrides for it."""
    return "--hydra-help" in parser._option_string_actions  # argparse has no public accessor


def _run_hydra(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    listener = capture.listener()
    if listener is None:
        return wrapped(*args, **kwargs)
    before = _jobs.get()
    try:
        result = wrapped(*args, **kwargs)
    except SystemExit as exc:  # --help, --hydra-help, a bad override
        if _jobs.get() == before:
            listener.on_parse_exit(exc)
        raise
    if _jobs.get() == before:
        listener.on_parse_exit(NoJob())
    return result


def _set_config(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    listener = capture.listener()
    cfg = inspect.signature(wrapped).bind(*args, **kwargs).arguments.get("cfg")
    # run_job sets the job's output folder before its last set_config; composing the config for
    # --help, --cfg or --info never does.
    if (
        listener is not None
        and isinstance(cfg, DictConfig)
        and "hydra" in cfg
        and not OmegaConf.is_missing(cfg.hydra.runtime, "output_dir")
    ):
        # What the task function gets: the config without Hydra's own node.
        task = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
        _jobs.set(_jobs.get() + 1)
        _report(listener, cfg.hydra, task)
    return result


def _report(listener: capture.ParseListener, hydra: Any, task: DictConfig) -> None:
    resolved = _container(task)
    overrides = [str(o) for o in hydra.overrides.task]
    listener.on_resolved(
        capture.Resolution(
            framework="hydra",
            params=dict(_override(o) for o in overrides),
            config=resolved,
            config_files=tuple(_files(hydra)),
            lookup=resolved,
        )
    )


def _container(cfg: DictConfig) -> dict[str, Any]:
    try:
        value = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 -- an interpolation only the task can resolve: keep it as written
        value = OmegaConf.to_container(cfg, resolve=False)
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _override(text: str) -> tuple[str, str]:
    """``trainer.epochs=5`` as key and value; ``+key=v``, ``++key=v`` and ``~key`` keep their
    key without the sign."""
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def _files(hydra: Any) -> list[str]:
    """The config files the job was composed from that lie in a folder on disk: the primary
    config first, then the option chosen for each config group (Hydra's own groups aside)."""
    folders = [
        str(source.path)
        for source in hydra.runtime.config_sources
        if source.schema == "file" and source.provider != "hydra"
    ]
    wanted: list[str] = []
    name = hydra.job.config_name
    if name:
        wanted.append(str(name))
    for group, option in sorted(dict(hydra.runtime.choices).items()):
        if option is not None and not str(group).startswith("hydra"):
            wanted.append(f"{group}/{option}")
    found: list[str] = []
    for want in wanted:
        stem = want if want.endswith((".yaml", ".yml")) else f"{want}.yaml"
        for folder in folders:
            path = os.path.join(folder, stem)
            if os.path.isfile(path):
                found.append(path)
                break
    return found
