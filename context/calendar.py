"""Business hours from a time zone and a weekly calendar, with holidays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# How far ahead ``next_change`` looks for a boundary (two weeks covers any weekly calendar
# except one interrupted by a long run of holidays, where "no change soon" is the answer).
_LOOKAHEAD_DAYS = 15


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

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant after ``now`` at which ``is_business_hours`` flips (None: not soon).

        Decisions that depend on business hours must not be cached across it.
        """
        zone = ZoneInfo(self.timezone)
        today = now.astimezone(zone).date()
        current = self.is_business_hours(now)
        for offset in range(_LOOKAHEAD_DAYS):
            day = today + timedelta(days=offset)
            for at in (self.start, self.end):
                boundary = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
                if boundary > now and self.is_business_hours(boundary) != current:
                    return boundary
        return None
