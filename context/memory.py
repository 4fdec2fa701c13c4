"""In-process live context: configured defaults plus the business calendar."""

from __future__ import annotations

from datetime import datetime

from context.calendar import BusinessCalendar
from context.model import LiveSnapshot, ValueSource


class InMemoryContext:
    """Live context held in this process: the default when nothing else is configured."""

    def __init__(self, *, calendar: BusinessCalendar, incident: bool = False,
                 risk_level: int = 0) -> None:
        if not 0 <= risk_level <= 3:
            raise ValueError("risk_level must be 0 (low) ... 3 (critical)")
        self.calendar = calendar
        self.incident = incident
        self.risk_level = risk_level

    def snapshot(self, principal_id: str | None, now: datetime) -> LiveSnapshot:
        config = ValueSource("config")
        return LiveSnapshot(
            now=now,
            incident=self.incident,
            risk_level=self.risk_level,
            business_hours=self.calendar.is_business_hours(now),
            version="static",
            sources={"now": ValueSource("clock", now), "incident": config,
                     "risk_level": config,
                     "business_hours": ValueSource(f"calendar:{self.calendar.timezone}")},
        )
