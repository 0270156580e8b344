"""Options every HIS adapter shares (``[his.options]``): what "completed" means, the HIS clock, retries.

Each adapter's ``config.py`` extends ``CommonOptions`` with its own fields. Unknown options are rejected so a
typo in the configuration is an error at start-up, not a silently ignored setting.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.his.errors import AdapterConfigError


class Completion(StrEnum):
    """When the HIS counts an encounter as completed (ready to send)."""

    DISCHARGE = "discharge"  # the discharge / end-of-visit time (NGAY_RA) is set
    PAYMENT = "payment"  # the payment time (NGAY_TTOAN) is set
    STATUS = "status"  # a status column holds one of ``status_values``


#: Standard name of the column whose time dates the completion, per rule.
COMPLETION_TIME_FIELD = {Completion.DISCHARGE: "NGAY_RA", Completion.PAYMENT: "NGAY_TTOAN"}


class CommonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    completion: Completion = Field(
        Completion.DISCHARGE, description="What makes an encounter completed: discharge, payment or status."
    )
    status_values: tuple[str, ...] = Field(
        (), description="completion = status: the status values that mean completed."
    )
    status_time_field: str = Field(
        "NGAY_RA",
        description="completion = status: standard name of the column that dates the completion.",
    )
    timezone: str = Field(
        "Asia/Ho_Chi_Minh", description="Time zone of the HIS's timestamps that carry no zone."
    )
    retry_attempts: int = Field(4, ge=1, le=20, description="Attempts per query on transient errors.")
    retry_initial_wait_s: float = Field(0.5, gt=0, description="First back-off wait; doubles up to 8 s.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _status_needs_values(self) -> Self:
        if self.completion is Completion.STATUS and not self.status_values:
            raise ValueError("completion = 'status' needs status_values")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def completion_time_field(self) -> str:
        """Standard name of the column whose value is the completion time (upper case)."""
        return COMPLETION_TIME_FIELD.get(self.completion, self.status_time_field.upper())


OptionsT = TypeVar("OptionsT", bound=CommonOptions)


def parse_options(model: type[OptionsT], raw: dict[str, Any], adapter: str) -> OptionsT:
    """Validate ``his.options`` for one adapter; errors name the option, never its value."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "options"
            message = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{location}: {message}")
        raise AdapterConfigError(f"his.options for adapter {adapter!r}: " + "; ".join(problems)) from None
