"""The ``gsm-modem`` entry: its keys, and the scenario of its emulator (``emulate:``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_agent.hal.serial import check_framing

Network = Literal["registered", "roaming", "none"]


@dataclass(frozen=True)
class ModemEmulation:
    """The emulated modem: its network registration and a scripted ``+CMS ERROR``.

    ``cms_error`` (e.g. 38: network out of order) answers the first ``cms_failures`` texts
    (-1: every text) with ``+CMS ERROR: <n>``; ``network: none`` answers ``+CREG: 0,0``."""

    network: Network = "registered"
    cms_error: int | None = None
    cms_failures: int = -1
    echo: bool = True  # a modem echoes commands until ATE0, as shipped

    def __post_init__(self) -> None:
        if self.cms_error is not None and not 0 <= self.cms_error <= 511:
            raise ValueError("emulate.cms_error must be within 0..511")
        if self.cms_failures < -1:
            raise ValueError("emulate.cms_failures must be >= -1 (-1: always)")


@dataclass(frozen=True)
class ModemOptions:
    port: str = "/dev/ttyUSB2"  # a USB LTE modem's AT port (SIM7600: ttyUSB2)
    baudrate: int = 115200
    framing: str = "8N1"
    answer_timeout: float = 30.0  # s per command; +CMGS may take this long on a weak network
    queue: int = 8  # texts waiting for the modem at most
    emulate: ModemEmulation = field(default_factory=ModemEmulation)

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        check_framing(self.framing)
        if self.answer_timeout <= 0:
            raise ValueError("answer_timeout must be > 0")
        if not 1 <= self.queue <= 64:
            raise ValueError("queue must be within 1..64")
