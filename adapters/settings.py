"""The base of every settings section: unknown keys are refused (a typo must not pass silently) and a
loaded section is frozen.

The adapters own the sections that configure them (``adapters.his.settings``, ``adapters.signers.settings``,
``adapters.gateway.settings``); ``worker.config`` composes them with its own into one ``Settings``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
