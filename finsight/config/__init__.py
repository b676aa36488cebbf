"""Typed environment configuration: the single source of truth for every layer."""

from finsight.config.loader import ENVIRONMENTS, ConfigError, load_environment, repo_root
from finsight.config.models import ApiSource, ApiStream, Column, Environment, PciClass, Table

__all__ = [
    "ENVIRONMENTS",
    "ApiSource",
    "ApiStream",
    "Column",
    "ConfigError",
    "Environment",
    "PciClass",
    "Table",
    "load_environment",
    "repo_root",
]
