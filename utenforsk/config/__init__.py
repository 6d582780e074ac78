"""Configuration: pydantic schemas and safe YAML loading with ``base:``/``include:`` composition."""

from utenforsk.config.loader import load_model_config
from utenforsk.config.params import Param
from utenforsk.config.schema import ModelConfig

__all__ = ["ModelConfig", "Param", "load_model_config"]
