"""utenforsk: agent-based simulation of youth outsiderhood pathways in Norway, ages 0-29.

The public entry point is :class:`utenforsk.model.UtenforskModel` (a ``mesa.Model``); the command
line is ``utenforsk`` (see ``utenforsk --help``).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "UtenforskModel"]


def __getattr__(name):  # lazy: importing the package must not compile kernels
    if name == "UtenforskModel":
        from utenforsk.model import UtenforskModel

        return UtenforskModel
    raise AttributeError(name)
