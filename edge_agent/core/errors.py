"""The error tree. Every exception the agent raises on purpose derives from EdgeAgentError.

Any other exception escaping a component is a bug. Specific errors also subclass the
closest built-in (as gpiozero does), so callers may catch either.
"""

from __future__ import annotations

import os


class EdgeAgentError(Exception):
    """Root of all deliberate edge-agent errors."""


# --- configuration -------------------------------------------------------------------------


class ConfigError(EdgeAgentError, ValueError):
    """A site configuration is invalid. ``problems`` holds every problem found;
    ``partial`` the configuration as far as it could be built (the sensors that passed),
    for tools that check on despite the problems (``doctor``), or None."""

    def __init__(self, problems: list[ConfigProblem], partial: object = None) -> None:
        self.problems = problems
        self.partial = partial
        super().__init__("\n".join(p.format() for p in problems))


class ConfigProblem:
    """One located configuration problem: ``FILE:LINE: dotted.path: message``."""

    __slots__ = ("file", "line", "message", "path")

    def __init__(self, file: str, line: int, path: str, message: str) -> None:
        self.file = file
        self.line = line
        self.path = path
        self.message = message

    def format(self) -> str:
        return f"{self.file}:{self.line}: {self.path or '<root>'}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.format()!r})"


# --- protocols (sans-I/O parsers) ----------------------------------------------------------


class ProtocolError(EdgeAgentError, ValueError):
    """Input bytes violate a device protocol. ``offset`` is where, in the parser's stream."""

    reason = "protocol"

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")


class FrameError(ProtocolError):
    """A frame is malformed: bad start/end markers, impossible length, bad structure."""

    reason = "frame"


class ChecksumError(ProtocolError):
    """A frame's checksum/CRC does not match its content."""

    reason = "checksum"


class DecryptionError(ProtocolError):
    """An encrypted frame could not be authenticated/decrypted."""

    reason = "decryption"


# --- hardware ------------------------------------------------------------------------------


class HardwareError(EdgeAgentError, OSError):
    """A device or bus misbehaved. Drivers retry these with backoff."""


class DeviceNotFoundError(HardwareError):
    """A port, bus or device is absent (unplugged USB adapter, I2C NAK on address)."""


class DeviceTimeoutError(HardwareError, TimeoutError):
    """A device did not answer within its timeout."""


class ValueOutOfRangeError(HardwareError):
    """A device returned a value outside its physical range; it is never published."""


# --- store ---------------------------------------------------------------------------------


class StoreError(EdgeAgentError):
    """The durable store could not do what was asked."""


class KeyFileError(StoreError, PermissionError):
    """A key file is missing, malformed, or readable by group/others."""


class ChannelMismatchError(StoreError, ValueError):
    """A reading bound to one channel was offered to another channel's store."""


class StoreFullError(StoreError):
    """No room for the batch even after evicting by policy; the batch was not accepted."""


class DurabilityError(StoreError):
    """A write or fsync failed; the batch was not accepted (never retried-then-acknowledged)."""


class IncompleteWriteError(StoreError, OSError):
    """A write to a file did not complete (a short write, ENOSPC, EIO part way). Carries the
    ``errno`` of the cause (ENOSPC for a write that made no progress) and how many bytes
    did reach the file (``written``), so the caller can cut them back off."""

    def __init__(self, err: int, message: str, written: int = 0) -> None:
        OSError.__init__(self, err, message)
        self.written = written

    def __str__(self) -> str:
        return str(self.strerror)


class StoreClosedError(StoreError):
    """The store was used after close()."""


class StoreLockedError(StoreError, BlockingIOError):
    """Another open store (another edge-agent process, or this one) holds the channel
    store's lock. Raised at once, before anything in the store is read or repaired."""

    def __init__(self, directory: object, holder: int | None = None) -> None:
        self.directory = directory
        self.holder = holder
        if holder is not None and holder == os.getpid():
            who = "already open in this process"
        else:
            pid = f" (pid {holder})" if holder is not None else ""
            who = f"in use by another edge-agent{pid}"
        super().__init__(f"store {directory} is {who}; only one edge-agent may use a state "
                         "directory (see `edge-agent status`; stop the service with "
                         "`systemctl stop edge-agent` before running it by hand)")

    def __str__(self) -> str:
        return str(self.args[0])


# --- uplink --------------------------------------------------------------------------------


class UplinkError(EdgeAgentError):
    """The MQTT uplink failed."""


class PublishRejectedError(UplinkError):
    """A broker answered a publish with a failure reason code (>= 0x80)."""

    def __init__(self, reason_code: int, reason: str) -> None:
        self.reason_code = reason_code
        super().__init__(f"publish rejected by broker: 0x{reason_code:02X} {reason}")
