"""Which boot this is: it tells a process crash (page cache intact) from a power cut.

    source = BootIdSource.from_env()    # what ChannelStore uses by default
    source()                            # "3f0c..." or None (unknown: treated as a new boot)

The kernel's ``/proc/sys/kernel/random/boot_id`` is read when it can be. Under the systemd
unit's ``ProcSubset=pid`` it cannot, so the service keeps its own marker: a random id in
``$RUNTIME_DIRECTORY/boot-id`` (``RuntimeDirectory=edge-agent`` with
``RuntimeDirectoryPreserve=yes``: it survives restarts of the service, and, being on the
``/run`` tmpfs, never a reboot or a power cut). The marker is trusted only on a volatile
file system (checked in ``/proc/self/mountinfo``, which ``ProcSubset=pid`` leaves visible);
a marker that could outlive a power cut would make one look like a crash, and then
sequence numbers could be reused. See docs/design/0005-boot-id-under-the-sandbox.md.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from edge_agent.core.mounts import on_volatile_fs

KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MARKER = "boot-id"


class BootIdSource:
    """Callable returning this boot's id, or None when it cannot be known."""

    def __init__(self, kernel: Path = KERNEL_BOOT_ID, runtime_dir: Path | None = None,
                 volatile: Callable[[Path], bool] = on_volatile_fs) -> None:
        self.kernel = kernel
        self.runtime_dir = runtime_dir
        self._volatile = volatile

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BootIdSource:
        """systemd sets ``RUNTIME_DIRECTORY`` (``:``-separated) for ``RuntimeDirectory=``."""
        value = (os.environ if env is None else env).get("RUNTIME_DIRECTORY", "")
        first = value.split(":")[0]
        return cls(runtime_dir=Path(first) if first else None)

    def __call__(self) -> str | None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            kid = self.kernel.read_text().strip()
            if kid:
                return kid
        if self.runtime_dir is None or not self._volatile(self.runtime_dir):
            return None
        try:
            return self._marker(self.runtime_dir / MARKER)
        except OSError:
            return None

    @staticmethod
    def _marker(path: Path) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            got = path.read_text().strip()
            if got.startswith("run-") and len(got) == 36:
                return got
        mid = "run-" + uuid.uuid4().hex
        tmp = path.with_name(f".{MARKER}.{os.getpid()}")
        tmp.write_text(mid + "\n")
        try:
            os.link(tmp, path)  # exclusive: two processes starting at once agree on one id
        except FileExistsError:
            got = path.read_text().strip()
            if got.startswith("run-") and len(got) == 36:
                return got
            os.replace(tmp, path)  # a damaged marker: this boot's id from now on
            return mid
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return mid
