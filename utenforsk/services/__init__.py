"""Services as Mesa agents: one agent per service and municipality type."""

from utenforsk.services.agents import ServiceAgent

__all__ = ["ServiceAgent"]
