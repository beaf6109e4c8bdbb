"""Period keys: one at-rest key per channel per period (a day by default), for shredding.

    <state_dir>/keys/<channel>.key                        the channel key (key-encryption key;
                                                          also opens legacy records, key id 1)
    <state_dir>/keys/<channel>/<period>-<gen>-<kid>.key   a period key, wrapped, mode 0600
    <state_dir>/keys/<channel>/shredded.log               "<kid> <period> <time>" per shred

A batch is sealed with the key of the period of its oldest reading (``period`` = floor(time
/ key_period)). Deleting a period key (crypto-shredding) makes every record sealed with it
unreadable: the store reports those readings as lost with reason "shredded". Keys of periods
older than the channel's retention are shredded by the agent; ``edge-agent keys shred``
shreds on demand (``--all``: every key of the site, for decommissioning).

Rotation (``edge-agent keys rotate``) adds a new generation for the current period; it is
current from then on, older keys stay until no stored record uses them (``keys prune``).

Each period key file holds the key wrapped (AES-GCM) under a key derived from the channel
key, bound to channel, period and key id. A copy of a deleted key file left in the SD
card's flash blocks is therefore useless without the channel key, and shredding the
channel key (``keys shred --all``) makes every remnant unreadable at once.

Key ids are 16-bit (the record header field): id 1 is the channel key itself (records
written before period keys); period keys get ids 2..65535, allocated in turn.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..clock import Clock, SystemClock
from ..errors import KeyFileError
from ..fsutil import atomic_write, fsync_dir
from .keys import check_private

log = logging.getLogger("edge_agent.keys")

LEGACY_KID = 1
FIRST_KID, LAST_KID = 2, 65535
_MAGIC = b"EAPK1"
_NAME = re.compile(r"^(\d{1,12})-(\d{1,4})-(\d{1,5})\.key$")
STATIC_PERIOD = 0  # key_period 0: one period for all time


@dataclass(frozen=True)
class PeriodKey:
    period: int
    gen: int
    kid: int
    path: Path


def _kek(channel_key: bytes, channel: str) -> AESGCM:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"edge-agent period-key wrap v1 " + channel.encode()).derive(channel_key)
    return AESGCM(raw)


def _aad(channel: str, period: int, kid: int) -> bytes:
    return f"{channel}|{period}|{kid}".encode()


class PeriodKeyring:
    """Implements the store's Keyring protocol. Thread-safe."""

    def __init__(self, directory: Path, channel: str, channel_key: bytes, period: float,
                 *, retention: float | None = None, clock: Clock | None = None,
                 legacy: bool = True) -> None:
        self.dir = directory
        self.channel = channel
        self.period = float(period)
        self.retention = retention
        self._clock = clock or SystemClock()
        self._kek = _kek(channel_key, channel)
        self._legacy = AESGCM(channel_key) if legacy else None
        self._lock = threading.Lock()
        self._cache: dict[int, AESGCM] = {}
        self._current: dict[int, tuple[int, AESGCM]] = {}
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        for k in self.list_keys():
            check_private(k.path)  # refuse to start on a loose key file, naming the fix
        self._shredded = self._read_shredded()
        self._last_shred_check = -math.inf

    # ------------------------------------------------------------------ index

    def list_keys(self) -> list[PeriodKey]:
        out = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m:
                out.append(PeriodKey(int(m.group(1)), int(m.group(2)), int(m.group(3)), p))
        return sorted(out, key=lambda k: (k.period, k.gen))

    def period_of(self, t: float) -> int:
        if self.period <= 0:
            return STATIC_PERIOD
        return max(0, math.floor(t / self.period))

    def period_end(self, period: int) -> float:
        return math.inf if self.period <= 0 else (period + 1) * self.period

    # ------------------------------------------------------------------ Keyring protocol

    def current(self, reading_time: float) -> tuple[int, AESGCM]:
        p = self.period_of(reading_time)
        with self._lock:
            hit = self._current.get(p)
            if hit is not None:
                return hit
            mine = [k for k in self.list_keys() if k.period == p]
            key = mine[-1] if mine else self._create(p, 0)
            aead = self._load(key)
            self._current[p] = (key.kid, aead)
            self._cache[key.kid] = aead
            return key.kid, aead

    def get(self, key_id: int) -> AESGCM | None:
        if key_id == LEGACY_KID:
            return self._legacy
        with self._lock:
            hit = self._cache.get(key_id)
            if hit is not None:
                return hit
            for k in self.list_keys():
                if k.kid == key_id:
                    aead = self._load(k)
                    self._cache[key_id] = aead
                    return aead
        return None

    def shredded(self, key_id: int) -> bool:
        """True when ``key_id`` was shredded on purpose (not merely missing)."""
        with self._lock:
            return key_id in self._shredded

    # ------------------------------------------------------------------ lifecycle

    def rotate(self) -> PeriodKey:
        """A new generation for the current period; it seals from now on."""
        p = self.period_of(self._clock.time())
        with self._lock:
            gen = max((k.gen for k in self.list_keys() if k.period == p), default=-1) + 1
            key = self._create(p, gen)
            self._current.pop(p, None)
        return key

    def shred(self, keys: list[PeriodKey], why: str) -> int:
        """Delete these period keys (overwritten first, best effort). Returns how many."""
        n = 0
        with self._lock:
            with open(self.dir / "shredded.log", "a", encoding="ascii") as logf:
                for k in keys:
                    overwrite_and_unlink(k.path)
                    self._cache.pop(k.kid, None)
                    self._current.pop(k.period, None)
                    self._shredded.add(k.kid)
                    logf.write(f"{k.kid} {k.period} {int(self._clock.time())}\n")
                    n += 1
                logf.flush()
                os.fsync(logf.fileno())
            os.chmod(self.dir / "shredded.log", 0o600)
            fsync_dir(self.dir)
        if n:
            log.warning("channel %s: shredded %d period key(s) (%s)", self.channel, n, why)
        return n

    def expired(self, now: float | None = None) -> list[PeriodKey]:
        """Period keys whose whole period lies before ``now - retention``."""
        if self.retention is None or self.period <= 0:
            return []
        cutoff = (self._clock.time() if now is None else now) - self.retention
        return [k for k in self.list_keys() if self.period_end(k.period) <= cutoff]

    def shred_expired(self, every: float = 60.0) -> int:
        """Shred keys past retention; cheap to call often (checks at most every ``every`` s)."""
        now = self._clock.monotonic()
        if now - self._last_shred_check < every:
            return 0
        self._last_shred_check = now
        old = self.expired()
        return self.shred(old, "older than retention") if old else 0

    def prune(self, in_use: set[int]) -> int:
        """Shred keys of past periods (and superseded generations) no stored record uses."""
        cur = self.period_of(self._clock.time())
        all_keys = self.list_keys()
        newest = {k.period: k.gen for k in all_keys}
        idle = [k for k in all_keys if k.kid not in in_use
                and (k.period < cur or k.gen < newest[k.period])]
        return self.shred(idle, "no record uses it") if idle else 0

    # ------------------------------------------------------------------ files

    def _create(self, period: int, gen: int) -> PeriodKey:
        kid = self._next_kid()
        path = self.dir / f"{period}-{gen}-{kid}.key"
        key = secrets.token_bytes(32)
        nonce = os.urandom(12)
        blob = _MAGIC + nonce + self._kek.encrypt(nonce, key, _aad(self.channel, period, kid))
        atomic_write(path, blob, 0o600, exclusive=True)  # whole or absent, never empty
        self._shredded.discard(kid)
        log.info("channel %s: new period key %s", self.channel, path.name)
        return PeriodKey(period, gen, kid, path)

    def _next_kid(self) -> int:
        used = {k.kid for k in self.list_keys()}
        top = max(used, default=FIRST_KID - 1)
        span = LAST_KID - FIRST_KID + 1
        for i in range(1, span + 1):
            kid = FIRST_KID + (top - FIRST_KID + i) % span
            if kid not in used:
                return kid
        raise KeyFileError(f"{self.dir}: all {span} key ids in use; shred old period keys")

    def _load(self, k: PeriodKey) -> AESGCM:
        check_private(k.path)
        blob = k.path.read_bytes()
        if not blob.startswith(_MAGIC) or len(blob) != len(_MAGIC) + 12 + 48:
            raise KeyFileError(f"{k.path}: not a period key file")
        nonce, ct = blob[len(_MAGIC):len(_MAGIC) + 12], blob[len(_MAGIC) + 12:]
        try:
            raw = self._kek.decrypt(nonce, ct, _aad(self.channel, k.period, k.kid))
        except InvalidTag:
            raise KeyFileError(f"{k.path}: cannot unwrap: not made with this channel key "
                               "(or the file was renamed or altered)") from None
        return AESGCM(raw)

    def _read_shredded(self) -> set[int]:
        try:
            text = (self.dir / "shredded.log").read_text(encoding="ascii")
        except FileNotFoundError:
            return set()
        live = {k.kid for k in self.list_keys()}
        out = set()
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0].isdigit() and int(parts[0]) not in live:
                out.add(int(parts[0]))
        return out


def overwrite_and_unlink(path: Path) -> None:
    """Overwrite with random bytes, sync, then unlink. On flash (wear levelling) the old
    blocks may survive: the wrapping under the channel key is what protects them."""
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        try:
            with open(path, "r+b") as f:
                f.write(os.urandom(size))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a failed overwrite must not keep the key: unlink anyway
            log.warning("%s: overwrite before delete failed (%s); deleted anyway", path, exc)
        path.unlink()


def key_ids_in_use(store_dir: Path) -> set[int]:
    """Key ids of every record still in a channel store's segment files (headers only)."""
    from . import record as rec

    used: set[int] = set()
    for seg in store_dir.glob("lane-*/*.seg"):
        try:
            with open(seg, "rb") as f:
                data = f.read()
        except OSError:
            continue
        off = 0
        while off + rec.HEAD_SIZE <= len(data):
            try:
                head = rec.parse_header(data[off:off + rec.HEAD_SIZE])
            except rec.RecordCorrupt:
                nxt = data.find(rec.MAGIC, off + 1)
                if nxt < 0:
                    break
                off = nxt
                continue
            used.add(head.key_id)
            off += head.size
    return used


def open_keyring(state_dir: Path, channel: str, channel_key: bytes, key_period: float,
                 retention: float | None = None,
                 clock: Clock | None = None) -> bytes | PeriodKeyring:
    """The store's keys for a channel: period keys, or the bare channel key when
    ``key_period`` is 0 (one static key, as before period keys existed)."""
    if key_period <= 0:
        return channel_key
    return PeriodKeyring(state_dir / "keys" / channel, channel, channel_key, key_period,
                         retention=retention, clock=clock)
