"""Samplers by name: any diffusers scheduler that can stand in for a model's own, built from its saved config.

A model is trained under one noise schedule (betas, prediction type, timestep spacing), which its scheduler's
config holds; diffusers lists the scheduler classes that can sample under the same schedule as the
scheduler's `compatibles`. A name is looked up only there, so a user's string never reaches an arbitrary
import.
"""
from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import diffusers
from diffusers import SchedulerMixin
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers

from gen.core.errors import UserError
from gen.generator.pipeline import TextToImagePipeline

# Listed as compatible by diffusers, yet unable to reproduce an image from its seed: it draws its noise from a
# Brownian tree of its own, not from the per-image generators.
UNSEEDED = frozenset({"DPMSolverSDEScheduler"})


def compatible_schedulers(scheduler: SchedulerMixin) -> dict[str, type[SchedulerMixin]]:
    """Name → class of every scheduler that can sample a model trained under `scheduler`'s noise schedule.

    Beyond diffusers' `compatibles`, a class must take a `beta_schedule`: EDM's schedulers ignore the betas and
    feed the UNet log-sigma timesteps it never saw. Classes whose optional dependency is missing (diffusers'
    dummy objects, not SchedulerMixins) and UNSEEDED ones are left out.
    """
    found = {}
    for cls in scheduler.compatibles:
        if (isinstance(cls, type) and issubclass(cls, SchedulerMixin) and cls.__name__ not in UNSEEDED
                and "beta_schedule" in inspect.signature(cls.__init__).parameters):
            found[cls.__name__] = cls
    return dict(sorted(found.items()))


def scheduler_names(pipe: TextToImagePipeline) -> list[str]:
    """The scheduler class names `with_scheduler` accepts for PIPE, sorted."""
    return list(compatible_schedulers(pipe.scheduler))


def build_scheduler(current: SchedulerMixin, name: str) -> SchedulerMixin:
    """A fresh scheduler of class NAME with CURRENT's config; UserError listing the valid names otherwise."""
    choices = compatible_schedulers(current)
    if name not in choices:
        raise UserError(f"scheduler {name!r} cannot sample this model; choose one of: {', '.join(choices)}")
    return choices[name].from_config(current.config)


def with_scheduler(pipe: TextToImagePipeline, name: str) -> TextToImagePipeline:
    """PIPE sampling with scheduler class NAME (e.g. EulerDiscreteScheduler), built from PIPE's scheduler config.

    A shallow copy that shares PIPE's weights: PIPE keeps its own scheduler, so callers that serve several
    requests from one loaded model never see one request's sampler in another's.
    """
    drawer = copy.copy(pipe)
    drawer.scheduler = build_scheduler(pipe.scheduler, name)  # updates the copy's config only
    return drawer


def saved_scheduler(model_dir: str | Path) -> SchedulerMixin | None:
    """The scheduler a model folder saved, built from its config without loading any weights, so a scheduler
    name can be checked before the model loads; None when the folder has no readable diffusers scheduler."""
    try:
        config = json.loads((Path(model_dir) / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    name = config.get("_class_name") if isinstance(config, dict) else None
    # Only a name on diffusers' list of interchangeable samplers is looked up: a file's string never picks an import.
    known = isinstance(name, str) and name in KarrasDiffusionSchedulers.__members__
    cls = getattr(diffusers, name) if known else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        return None
    try:
        return cls.from_config(config)
    except (ValueError, TypeError, NotImplementedError):  # a bad value: loading the model reports it
        return None
