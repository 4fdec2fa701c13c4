"""Business hours from a time zone and a weekly calendar, with holidays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """``start <= local time < end`` on ``days`` (0 = Monday), except ``holidays``."""

    timezone: str = "UTC"
    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: frozenset[date] = field(default=frozenset())

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # fail at configuration time, not per decision
        if not self.start < self.end:
            raise ValueError("business hours: start must be before end")

    @classmethod
    def from_strings(cls, *, timezone: str, start: str, end: str, days: list[int],
                     holidays: list[str] | None = None) -> BusinessCalendar:
        return cls(timezone=timezone, start=time.fromisoformat(start),
                   end=time.fromisoformat(end), days=frozenset(days),
                   holidays=frozenset(date.fromisoformat(h) for h in holidays or []))

    def is_business_hours(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        return (local.weekday() in self.days and local.date() not in self.holidays
                and self.start <= local.time() < self.end)
