"""Services as Mesa agents: one agent per service and service area (municipality type or municipality)."""

from utenforsk.services.agents import ServiceAgent, ServiceAreas

__all__ = ["ServiceAgent", "ServiceAreas"]
