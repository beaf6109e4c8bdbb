"""What several sub-commands share: the default paths and loading the site file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.config.schema import SiteConfig
    from edge_agent.core.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/edge-agent/site.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/edge-agent")  # systemd StateDirectory=edge-agent


def load_site(path: Path) -> SiteConfig:
    """The site file, validated against the known sensor types (raises ConfigError)."""
    from edge_agent.config import load_config
    from edge_agent.devices.registry import SENSOR_TYPES

    return load_config(path, SENSOR_TYPES)


def print_problems(exc: ConfigError) -> None:
    """One ``FILE:LINE: dotted.path: what is wrong`` line per problem, on stderr."""
    for p in exc.problems:
        print(p.format(), file=sys.stderr)
