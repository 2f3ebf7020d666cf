"""``Family``: what the model registry knows of a family (name, description, build, output length).

Each family module declares one ``FAMILY = Family(...)`` (a variant such as SplashNet declares one
per setting) and ``emgtf.models`` registers them; its defaults are ``configs/model/<name>.yaml``,
read by ``emgtf.models.hyperparameters.family_defaults``, so the object holds no defaults of
its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from emgtf.models.hyperparameters import family_defaults


@dataclass(frozen=True)
class Family:
    """A model family.

    ``build(hp)`` takes the complete, resolved hyperparameters and returns the Keras model
    (``model.name`` is ``name``); ``emission_rule(hp)`` is the human-readable output length, e.g.
    ``frames - 124``.
    """

    name: str
    description: str
    build: Callable[[dict], keras.Model]
    emission_rule: Callable[[dict], str]

    @property
    def defaults(self) -> dict:
        """All hyperparameters with their defaults, from ``configs/model/<name>.yaml`` (a fresh dict)."""
        return family_defaults(self.name)
