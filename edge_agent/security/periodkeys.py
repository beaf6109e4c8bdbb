"""Period keys: one at-rest key per channel per period (a day by default), for shredding.

    <state_dir>/keys/<channel>.key                        the channel key (key-encryption key;
                                                          also opens legacy records, key id 1)
    <state_dir>/keys/<channel>/<period>-<gen>-<kid>.key   a period key, wrapped, mode 0600
    <state_dir>/keys/<channel>/shredded.log               "<kid> <period> <time>" per shred
    <state_dir>/keys/<channel>/kid.hwm                    highest key id ever issued
    <state_dir>/keys/<channel>/channel.check              tells a damaged period key from a
                                                          wrong channel key
    <state_dir>/keys/<channel>/damaged-<t>-<name>.key     a period key that failed to open,
                                                          moved aside

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
written before period keys); period keys get ids 2..65535, each issued once. The highest
id issued is made durable (``kid.hwm``) before its key file is created, so a shredded,
lost or damaged key's id never comes back: a reused id would let records sealed with
the old key be taken for the new key's.

A period key file that cannot be opened (empty, cut short, a flipped bit) is moved aside
(``damaged-*.key``, kept for inspection), reported as a security event, and its key id is
remembered as lost: the store reports the records it sealed as ``corrupt``, and the
period gets a fresh key (a new id) so the channel goes on. An authentication failure can
also mean the channel key is not the one the period keys were wrapped with (a restored
or mixed-up key file); ``channel.check`` (a one-way check value of the channel key, or
failing that any period key that still opens) tells the two apart. A wrong channel key
is refused with an error naming it, never taken for damage.

Periods that start before ``CLOCK_FLOOR`` hold readings taken before the clock was set
(a Pi without RTC boots in 1970): retention never shreds their keys (see
docs/design/0007-period-keys-damage-and-unsynced-retention.md).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import KeyFileError
from edge_agent.core.fsutil import atomic_write, fsync_dir
from edge_agent.core.model import CLOCK_FLOOR
from edge_agent.security.keys import check_private
from edge_agent.security.keywrap import aad, check_value, kek, parse_kid, render_kid

log = logging.getLogger("edge_agent.keys")

LEGACY_KID = 1
FIRST_KID, LAST_KID = 2, 65535
_MAGIC = b"EAPK1"
_KEY_FILE_SIZE = len(_MAGIC) + 12 + 48
_NAME = re.compile(r"^(\d{1,12})-(\d{1,4})-(\d{1,5})\.key$")
_DAMAGED = re.compile(r"^damaged-\d+-(\d{1,12})-(\d{1,4})-(\d{1,5})\.key$")
KID_HWM = "kid.hwm"
CHANNEL_CHECK = "channel.check"
LOST_CORRUPT, LOST_SHREDDED = "corrupt", "shredded"
STATIC_PERIOD = 0  # key_period 0: one period for all time


@dataclass(frozen=True)
class PeriodKey:
    period: int
    gen: int
    kid: int
    path: Path


class _BadKeyFile(Exception):
    """Internal: a period key file does not open. ``tag``: it failed authentication (damage,
    or a wrong channel key); otherwise its framing is wrong (damage whatever the key)."""

    def __init__(self, why: str, tag: bool) -> None:
        super().__init__(why)
        self.tag = tag


class PeriodKeyring:
    """Implements the store's Keyring protocol. Thread-safe."""

    def __init__(self, directory: Path, channel: str, channel_key: bytes, period: float,
                 *, retention: float | None = None, clock: Clock | None = None,
                 legacy: bool = True,
                 on_event: Callable[[str, str, str], None] | None = None) -> None:
        self.dir = directory
        self.channel = channel
        self.period = float(period)
        self.retention = retention
        self._clock = clock or SystemClock()
        self._kek = kek(channel_key, channel)
        self._check = check_value(channel_key, channel)
        self._on_event = on_event  # (category, outcome, detail): security event sink
        self._legacy = AESGCM(channel_key) if legacy else None
        self._lock = threading.Lock()
        self._cache: dict[int, AESGCM] = {}
        self._current: dict[int, tuple[int, AESGCM]] = {}
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        for k in self.list_keys():
            check_private(k.path)  # refuse to start on a loose key file, naming the fix
        self._shredded = self._read_shredded()
        self._damaged = self._damaged_kids()
        self._last_shred_check = -math.inf
        self._verified = False  # the channel key is known to be the one the keys were made with
        with self._lock:
            self._open_all()

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

    def unsynced(self, period: int) -> bool:
        """The period starts before the clock can be right: readings of an unset clock."""
        return self.period > 0 and period * self.period < CLOCK_FLOOR

    # ------------------------------------------------------------------ Keyring protocol

    def current(self, reading_time: float) -> tuple[int, AESGCM]:
        p = self.period_of(reading_time)
        with self._lock:
            hit = self._current.get(p)
            if hit is not None:
                return hit
            mine = [k for k in self.list_keys() if k.period == p]
            aead = None
            if mine:
                key = mine[-1]
                aead = self._cache.get(key.kid)
                if aead is None:
                    aead = self._open_key(key)
            if aead is None:
                # none yet, or the newest was damaged and moved aside: a fresh key, new id
                key = self._create(p, max((k.gen for k in mine), default=-1) + 1)
                aead = self._open_key(key)
                if aead is None:
                    raise KeyFileError(f"{key.path}: a new period key did not read back")
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
                    opened = self._open_key(k)
                    if opened is not None:
                        self._cache[key_id] = opened
                    return opened
        return None

    def shredded(self, key_id: int) -> bool:
        """True when ``key_id`` was shredded on purpose (not merely missing)."""
        with self._lock:
            return key_id in self._shredded

    def lost(self, key_id: int) -> str | None:
        """Why records sealed with ``key_id`` can never be opened: "shredded" (on purpose),
        "corrupt" (its key file was damaged and moved aside), or None (not known lost)."""
        with self._lock:
            if key_id in self._cache:
                return None
            if key_id in self._shredded:
                return LOST_SHREDDED
            if key_id in self._damaged:
                return LOST_CORRUPT
        return None

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
        """Period keys whose whole period lies before ``now - retention``.

        Never the keys of periods before the clock could be right (they seal readings taken
        before it was set, whose age is unknown), and nothing while the clock is unset."""
        if self.retention is None or self.period <= 0:
            return []
        now = self._clock.time() if now is None else now
        if now < CLOCK_FLOOR:
            return []
        cutoff = now - self.retention
        return [k for k in [*self.list_keys(), *self._damaged_keys()]
                if self.period_end(k.period) <= cutoff and not self.unsynced(k.period)]

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
        blob = _MAGIC + nonce + self._kek.encrypt(nonce, key, aad(self.channel, period, kid))
        atomic_write(path, blob, 0o600, exclusive=True)  # whole or absent, never empty
        self._shredded.discard(kid)
        log.info("channel %s: new period key %s", self.channel, path.name)
        return PeriodKey(period, gen, kid, path)

    def _next_kid(self) -> int:
        """The next key id, made durable as issued before any file uses it: never reused."""
        kid = self._top_kid() + 1
        if kid > LAST_KID:
            raise KeyFileError(f"{self.dir}: all key ids up to {LAST_KID} have been issued; "
                               "this channel needs a new channel key (keys shred --all)")
        atomic_write(self.dir / KID_HWM, render_kid(kid))
        return kid

    def _top_kid(self) -> int:
        """The highest key id ever issued: the durable mark, or (mark missing or damaged)
        every id a key file, a moved-aside file or the shred log still names."""
        seen = [k.kid for k in self.list_keys()]
        seen += self._damaged_kids()
        seen += self._logged_kids()
        try:
            mark = parse_kid((self.dir / KID_HWM).read_bytes())
        except FileNotFoundError:
            mark = None
        except OSError as exc:
            log.error("channel %s: %s unreadable (%s)", self.channel, KID_HWM, exc)
            mark = None
        else:
            if mark is None:
                log.error("channel %s: %s is damaged; key ids continue above every id "
                          "still on record", self.channel, self.dir / KID_HWM)
                self._event("key", "warning", f"{self.channel}/{KID_HWM} damaged")
        return max([FIRST_KID - 1, *seen, *([mark] if mark is not None else [])])

    def _unwrap(self, k: PeriodKey) -> AESGCM:
        """Open a period key file. Raises _BadKeyFile when it does not open,
        FileNotFoundError when it is gone."""
        blob = k.path.read_bytes()
        if not blob.startswith(_MAGIC) or len(blob) != _KEY_FILE_SIZE:
            raise _BadKeyFile(f"not a period key file ({len(blob)} bytes, expected "
                              f"{_KEY_FILE_SIZE} starting {_MAGIC.decode()})", tag=False)
        nonce, ct = blob[len(_MAGIC):len(_MAGIC) + 12], blob[len(_MAGIC) + 12:]
        try:
            raw = self._kek.decrypt(nonce, ct, aad(self.channel, k.period, k.kid))
        except InvalidTag:
            raise _BadKeyFile("does not authenticate (altered, renamed or damaged)",
                              tag=True) from None
        return AESGCM(raw)

    def _open_key(self, k: PeriodKey) -> AESGCM | None:
        """A key file's cipher; None when it is gone or damaged (then moved aside and
        reported). KeyFileError when it is loose, or wrapped under another channel key."""
        check_private(k.path)
        try:
            return self._unwrap(k)
        except FileNotFoundError:
            return None
        except PermissionError as exc:  # the wrong user, not damage: say so, move nothing
            raise KeyFileError(f"{k.path}: cannot read: {exc.strerror}") from None
        except OSError as exc:  # an unreadable block on the card: damage like any other
            why = f"unreadable ({exc.strerror or exc})"
        except _BadKeyFile as exc:
            if exc.tag and not self._verified:
                raise KeyFileError(f"{k.path}: cannot unwrap: not made with this channel key "
                                   "(or the file was renamed or altered)") from None
            why = str(exc)
        self._set_aside(k, why)
        return None

    def _open_all(self) -> None:
        """Open every period key once (at start): damaged ones are found now, not when a
        record or a commit first needs them."""
        bad: list[tuple[PeriodKey, str, bool]] = []
        for k in self.list_keys():
            try:
                self._cache[k.kid] = self._unwrap(k)
            except FileNotFoundError:
                continue
            except PermissionError as exc:  # the wrong user, not damage
                raise KeyFileError(f"{k.path}: cannot read: {exc.strerror}") from None
            except OSError as exc:
                bad.append((k, f"unreadable ({exc.strerror or exc})", False))
            except _BadKeyFile as exc:
                bad.append((k, str(exc), exc.tag))
        self._verified = self._verify_channel_key(opened=bool(self._cache),
                                                  any_keys=bool(self._cache) or bool(bad))
        for k, why, tag in bad:
            if tag and not self._verified:
                continue  # maybe a wrong channel key: _open_key names it when it is needed
            self._set_aside(k, why)

    def _verify_channel_key(self, opened: bool, any_keys: bool) -> bool:
        """Is this the channel key the period keys were wrapped with? Yes when the check
        file says so, or when a period key opens with it (or there is none to open);
        then the check file is written (or repaired)."""
        path = self.dir / CHANNEL_CHECK
        try:
            stored: bytes | None = path.read_bytes()
        except FileNotFoundError:
            stored = None
        except OSError:
            stored = b""
        if stored is not None and hmac.compare_digest(stored, self._check):
            return True
        if not (opened or not any_keys):
            return False
        if stored is not None:
            log.error("channel %s: %s did not match a channel key that opens the period "
                      "keys (damaged); rewritten", self.channel, path)
            self._event("key", "warning", f"{self.channel}/{CHANNEL_CHECK} damaged; rewritten")
        try:
            atomic_write(path, self._check)
        except OSError as exc:  # read-only or full: checked again at the next start
            log.warning("channel %s: cannot write %s: %s", self.channel, path, exc)
        return True

    def _set_aside(self, k: PeriodKey, why: str) -> None:
        """Move a damaged key file aside (renamed, kept), remember its id as lost, report."""
        dest = self.dir / f"damaged-{max(0, int(self._clock.time()))}-{k.path.name}"
        try:
            os.replace(k.path, dest)
            fsync_dir(self.dir)
        except FileNotFoundError:
            return
        except OSError as exc:  # cannot rename (read-only card): lost all the same
            log.error("channel %s: cannot move %s aside: %s", self.channel, k.path, exc)
        self._damaged.add(k.kid)
        self._cache.pop(k.kid, None)
        if self._current.get(k.period, (None,))[0] == k.kid:
            del self._current[k.period]
        log.error("channel %s: period key %s is damaged (%s): moved aside to %s; records "
                  "sealed with key id %d cannot be opened and are reported as corrupt",
                  self.channel, k.path.name, why, dest.name, k.kid)
        self._event("key", "quarantined", f"{self.channel} period key id {k.kid} "
                    f"({k.path.name}): {why}; moved aside to {dest.name}")

    def _event(self, category: str, outcome: str, detail: str) -> None:
        if self._on_event is not None:
            self._on_event(category, outcome, detail)

    def _damaged_keys(self) -> list[PeriodKey]:
        """Key files moved aside as damaged (shredded like any key once past retention)."""
        out = []
        for p in self.dir.iterdir():
            m = _DAMAGED.match(p.name)
            if m:
                out.append(PeriodKey(int(m.group(1)), int(m.group(2)), int(m.group(3)), p))
        return out

    def _damaged_kids(self) -> set[int]:
        return {k.kid for k in self._damaged_keys()}

    def _logged_kids(self) -> set[int]:
        try:
            text = (self.dir / "shredded.log").read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return set()
        return {int(parts[0]) for parts in (line.split() for line in text.splitlines())
                if parts and parts[0].isdigit()}

    def _read_shredded(self) -> set[int]:
        live = {k.kid for k in self.list_keys()}
        return {kid for kid in self._logged_kids() if kid not in live}


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


def open_keyring(state_dir: Path, channel: str, channel_key: bytes, key_period: float,
                 retention: float | None = None, clock: Clock | None = None,
                 on_event: Callable[[str, str, str], None] | None = None
                 ) -> bytes | PeriodKeyring:
    """The store's keys for a channel: period keys, or the bare channel key when
    ``key_period`` is 0 (one static key, as before period keys existed)."""
    if key_period <= 0:
        return channel_key
    return PeriodKeyring(state_dir / "keys" / channel, channel, channel_key, key_period,
                         retention=retention, clock=clock, on_event=on_event)
