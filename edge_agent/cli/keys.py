"""``edge-agent keys``: the life of the node's keys (run these with the agent stopped).

    keys init     -c FILE [--owner USER[:GROUP]]   channel keys, period-key dirs, pseudonym key
    keys status   -c FILE                          what exists, modes, periods, key ids in use
    keys rotate   -c FILE --channel ot             a new period key becomes current
    keys prune    -c FILE [--channel ot]           shred period keys no stored record uses
    keys shred    -c FILE [--channel ot] [--before YYYY-MM-DD]   shred old period keys
    keys shred    -c FILE --all --yes              decommission: every key of the site
    keys export   -c FILE [--out FILE]             the node's public signing key, to enrol
    keys platform --suite x25519 --out DIR         an HPKE key pair for the platform side

A node that seals (``channels.<ch>.seal``) signs inside the seal with its own Ed25519 key
(``<state_dir>/keys/node-sign.key`` or the credential ``node-sign.key``); ``keys init``
creates it and writes its public enrolment record (``node-sign.pub``) for the platform.

Keys come from ``$CREDENTIALS_DIRECTORY/<channel>.key`` (systemd ``LoadCredential=``) when
that file exists, else from the config's ``key_file`` / ``<state_dir>/keys/<channel>.key``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from edge_agent.core.errors import ConfigError, EdgeAgentError, StoreLockedError
from edge_agent.core.model import Channel
from edge_agent.security import events as secevents
from edge_agent.security.keys import create_key, load_key
from edge_agent.security.periodkeys import PeriodKeyring, overwrite_and_unlink
from edge_agent.store.keyuse import key_ids_in_use
from edge_agent.store.lock import StoreLock


def channel_key_path(cfg: Any, ch: Channel) -> Path:
    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred and (Path(cred) / f"{ch.value}.key").is_file():
        return Path(cred) / f"{ch.value}.key"
    path: Path = cfg.key_file(ch)
    return path


def _keyring(cfg: Any, ch: Channel) -> PeriodKeyring:
    period = float(cfg.store.key_period)
    if period <= 0:
        raise EdgeAgentError("store.key_period is 0 (one static key): period keys, rotation "
                             "and shredding need key_period (e.g. 1d)")
    return PeriodKeyring(cfg.state_dir / "keys" / ch.value, ch.value,
                         load_key(channel_key_path(cfg, ch)), period,
                         retention=cfg.store.retention.get(ch),
                         on_event=secevents.sink(ch.value))


def _channels(cfg: Any, name: str | None) -> list[Channel]:
    if name is None:
        return list(cfg.channels)
    ch = Channel(name)
    if ch not in cfg.channels:
        raise EdgeAgentError(f"channel {name!r} is not defined in the config")
    return [ch]


def owner_ids(owner: str | None) -> tuple[int, int] | None:
    """``USER[:GROUP]`` as (uid, gid) (-1: unchanged); EdgeAgentError naming what is
    missing, before anything is created."""
    if not owner:
        return None
    import grp
    import pwd

    user, _, group = owner.partition(":")
    try:
        uid = pwd.getpwnam(user).pw_uid if user else -1
    except KeyError:
        raise EdgeAgentError(
            f"--owner {owner}: there is no user {user!r} on this system (systemd/install.sh "
            "creates the service user edge-agent; or give an existing USER[:GROUP])") from None
    try:
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError:
        raise EdgeAgentError(f"--owner {owner}: there is no group {group!r} on this "
                             "system") from None
    return uid, gid


def _chown(path: Path, owner: str | None) -> None:
    ids = owner_ids(owner)
    if ids is not None:
        os.chown(path, *ids)


def cmd_init(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    from edge_agent.security.privacy import PSEUDONYM_KEY

    keys_dir = cfg.state_dir / "keys"
    for d in (cfg.state_dir, keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        _chown(d, args.owner)
    files = [(channel_key_path(cfg, ch), f"channel {ch.value} key") for ch in cfg.channels]
    if not (os.environ.get("CREDENTIALS_DIRECTORY")
            and (Path(os.environ["CREDENTIALS_DIRECTORY"]) / PSEUDONYM_KEY).is_file()):
        files.append((keys_dir / PSEUDONYM_KEY, "pseudonym key"))
    for path, what in files:
        if path.exists():
            load_key(path)  # checks mode and format; never overwrites
            print(f"kept    {path} ({what})", file=out)
        else:
            create_key(path)
            secevents.emit("keys", "created", detail=f"{what}: {path}")
            print(f"created {path} ({what}, mode 0600)", file=out)
        if not str(path).startswith(os.environ.get("CREDENTIALS_DIRECTORY") or "\0"):
            _chown(path, args.owner)
    _init_signing_key(cfg, args, out)
    for ch in cfg.channels:
        if float(cfg.store.key_period) > 0:
            d = keys_dir / ch.value
            d.mkdir(exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
            _chown(d, args.owner)
            print(f"ready   {d}/ (period keys, one per "
                  f"{float(cfg.store.key_period) / 3600:g}h)", file=out)
    return 0


def _seals(cfg: Any) -> bool:
    return any(cc.seal is not None and cc.seal.enabled for cc in cfg.channels.values())


def _init_signing_key(cfg: Any, args: argparse.Namespace, out: TextIO) -> None:
    """The node signing key (when a channel seals) and its enrolment record for the
    platform, rewritten from the key every time so it always matches."""
    from edge_agent.security import nodekey

    if not _seals(cfg):
        return
    path = nodekey.signing_key_path(cfg.state_dir)
    if path.exists():
        key = nodekey.load(path)
        print(f"kept    {path} (node signing key)", file=out)
    else:
        key = nodekey.create(path)
        secevents.emit("keys", "created", detail=f"node signing key: {path}")
        print(f"created {path} (node signing key, Ed25519, mode 0600)", file=out)
    if not str(path).startswith(os.environ.get("CREDENTIALS_DIRECTORY") or "\0"):
        _chown(path, args.owner)
    pub = cfg.state_dir / "keys" / nodekey.ENROLMENT
    nodekey.write_enrolment(pub, nodekey.enrolment(cfg.site, cfg.node, key.public_key()))
    _chown(pub, args.owner)
    print(f"enrol   {pub} on the platform (node {cfg.site}/{cfg.node}, "
          f"{nodekey.fingerprint(key.public_key())}); it rejects sealed payloads of a node "
          "it has not enrolled", file=out)


def cmd_export(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    from edge_agent.security import nodekey

    key = nodekey.load(nodekey.signing_key_path(cfg.state_dir))
    text = nodekey.enrolment(cfg.site, cfg.node, key.public_key())
    if args.out is None:
        print(text, end="", file=out)
    else:
        nodekey.write_enrolment(args.out, text)
        print(f"wrote {args.out} ({nodekey.fingerprint(key.public_key())}): enrol it on the "
              "platform (edge-agent unseal --nodes)", file=out)
    return 0


def cmd_status(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    from edge_agent.security import nodekey

    if _seals(cfg):
        path = nodekey.signing_key_path(cfg.state_dir)
        if path.exists():
            mode = f"{stat.S_IMODE(path.stat().st_mode):04o}"
            fp = nodekey.fingerprint(nodekey.load(path).public_key())
            print(f"node signing key: {path} ({mode}) {fp}", file=out)
        else:
            print(f"node signing key: {path} (missing: edge-agent keys init)", file=out)
    for ch in cfg.channels:
        path = channel_key_path(cfg, ch)
        mode = f"{stat.S_IMODE(path.stat().st_mode):04o}" if path.exists() else "missing"
        print(f"channel {ch.value}: key {path} ({mode})", file=out)
        if float(cfg.store.key_period) <= 0 or not path.exists():
            continue
        kr = _keyring(cfg, ch)
        used = key_ids_in_use(cfg.state_dir / "store" / ch.value)
        for k in kr.list_keys():
            start = dt.datetime.fromtimestamp(k.period * kr.period, dt.UTC)
            print(f"  key {k.kid:5d}  period {start:%Y-%m-%d %H:%M}Z gen {k.gen}"
                  f"  {'in use' if k.kid in used else 'unused'}", file=out)
    return 0


def cmd_rotate(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    for ch in _channels(cfg, args.channel):
        k = _keyring(cfg, ch).rotate()
        secevents.emit("keys", "rotated", channel=ch.value, detail=f"new key id {k.kid}")
        print(f"channel {ch.value}: key id {k.kid} is current (period {k.period}, generation "
              f"{k.gen}); older keys stay until no record uses them (keys prune)", file=out)
    return 0


def cmd_prune(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    for ch in _channels(cfg, args.channel):
        n = _keyring(cfg, ch).prune(key_ids_in_use(cfg.state_dir / "store" / ch.value))
        if n:
            secevents.emit("keys", "shredded", channel=ch.value, count=n, detail="unused keys")
        print(f"channel {ch.value}: shredded {n} unused key(s)", file=out)
    return 0


def cmd_shred(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.all:
        if not args.yes:
            print("keys shred --all makes every buffered reading of this site unreadable, "
                  "for good; add --yes to do it", file=sys.stderr)
            return 2
        return _shred_all(cfg, args, out)
    for ch in _channels(cfg, args.channel):
        kr = _keyring(cfg, ch)
        if args.before:
            cutoff = dt.datetime.strptime(args.before, "%Y-%m-%d").replace(
                tzinfo=dt.UTC).timestamp()
            old = [k for k in kr.list_keys() if kr.period_end(k.period) <= cutoff]
        else:
            old = kr.expired()
        n = kr.shred(old, "on request")
        if n:
            secevents.emit("keys", "shredded", channel=ch.value, count=n, detail="on request")
        print(f"channel {ch.value}: shredded {n} period key(s)", file=out)
    return 0


def _shred_all(cfg: Any, args: argparse.Namespace, out: TextIO) -> int:
    from edge_agent.security.privacy import pseudonym_key_path

    channels = _channels(cfg, args.channel)
    for ch in channels:
        d = cfg.state_dir / "keys" / ch.value
        n = 0
        if d.is_dir():
            for p in sorted(d.glob("*.key")):
                overwrite_and_unlink(p)
                n += 1
        path = channel_key_path(cfg, ch)
        if path.exists() and not str(path).startswith(os.environ.get("CREDENTIALS_DIRECTORY")
                                                      or "\0"):
            overwrite_and_unlink(path)
            n += 1
        secevents.emit("keys", "shredded", channel=ch.value, count=n, detail="decommission")
        print(f"channel {ch.value}: shredded {n} key file(s); its store is unreadable now",
              file=out)
    if args.channel is None:
        p = pseudonym_key_path(cfg.state_dir)
        if p.exists() and p.parent == cfg.state_dir / "keys":
            overwrite_and_unlink(p)
            print(f"shredded the pseudonym key {p}", file=out)
        _shred_node_files(cfg, out)
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        print("keys passed as systemd credentials were not touched: remove them from "
              "/etc/credstore (or wherever LoadCredential= points)", file=out)
    return 0


def _shred_node_files(cfg: Any, out: TextIO) -> None:
    """Decommission: the node signing key (nothing can be sealed in this node's name any
    more) and the last status snapshot and metrics textfile (plaintext: counts and times of
    the resident's sensors)."""
    from edge_agent.daemon.status import STATUS_FILE
    from edge_agent.security.nodekey import ENROLMENT, SIGNING_KEY

    keys_dir = cfg.state_dir / "keys"
    for p, what in ((keys_dir / SIGNING_KEY, "the node signing key"),
                    (keys_dir / ENROLMENT, "its public enrolment record"),
                    (cfg.state_dir / STATUS_FILE, "the status snapshot"),
                    (cfg.metrics.textfile, "the metrics textfile")):
        if p is not None and p.exists():
            overwrite_and_unlink(p)
            print(f"shredded {what} {p}", file=out)


def cmd_platform(args: argparse.Namespace, out: TextIO) -> int:
    from edge_agent.security.seal import generate_files

    d: Path = args.out
    priv, pub = d / f"{args.name}.key", d / f"{args.name}.pub"
    generate_files(args.suite, priv, pub)
    print(f"created {pub} (give to the nodes: channels.it.seal.public_key_file)\n"
          f"created {priv} (mode 0600: the platform keeps it; edge-agent unseal --key)",
          file=out)
    return 0




SITE = "/etc/edge-agent/site.yaml"
KEYS_EXAMPLES = {
    "init": f"sudo edge-agent keys init -c {SITE} --owner edge-agent",
    "status": f"edge-agent keys status -c {SITE}",
    "rotate": (f"sudo systemctl stop edge-agent && sudo edge-agent keys rotate -c {SITE} "
               "--channel it && sudo systemctl start edge-agent"),
    "prune": (f"sudo systemctl stop edge-agent && sudo edge-agent keys prune -c {SITE} && "
              "sudo systemctl start edge-agent"),
    "shred": (f"sudo systemctl stop edge-agent && sudo edge-agent keys shred -c {SITE} "
              "--before 2026-01-01 && sudo systemctl start edge-agent"),
    "export": f"edge-agent keys export -c {SITE} --out pi-0042.enrol",
    "platform": "edge-agent keys platform --out /secure/platform --name platform-it",
}


def add_arguments(k: argparse.ArgumentParser) -> None:
    ks = k.add_subparsers(dest="keys_command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ks.add_parser(
            name, help=help_text, description=help_text,
            epilog=f"example:\n  {KEYS_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("-c", "--config", type=Path, required=True, help="site YAML file")
        return p

    p = with_config("init", "create the at-rest, period, pseudonym and node signing keys "
                           "(mode 0600)")
    p.add_argument("--owner", help="USER[:GROUP] to own the keys (the service user)")
    with_config("status", "list keys, modes, periods and which are in use")
    p = with_config("rotate", "make a new period key current (old ones stay while used)")
    p.add_argument("--channel", choices=[c.value for c in Channel])
    p = with_config("prune", "shred period keys no stored record uses")
    p.add_argument("--channel", choices=[c.value for c in Channel])
    p = with_config("shred", "shred period keys past retention (or --before, or --all)")
    p.add_argument("--channel", choices=[c.value for c in Channel])
    p.add_argument("--before", metavar="YYYY-MM-DD", help="shred periods ending before this")
    p.add_argument("--all", action="store_true", help="every key: decommission the site")
    p.add_argument("--yes", action="store_true", help="confirm --all")
    p = with_config("export", "print (or --out) the node's public signing key to enrol")
    p.add_argument("--out", type=Path, help="write the enrolment record to this file")
    p = ks.add_parser("platform", help="create an HPKE key pair for the platform (unseal)",
                      description="create an HPKE key pair for the platform (unseal)",
                      epilog=f"example:\n  {KEYS_EXAMPLES['platform']}",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=["x25519", "mlkem768-x25519"], default="x25519")
    p.add_argument("--out", type=Path, required=True, help="directory for NAME.key/NAME.pub")
    p.add_argument("--name", default="platform-it")


def stop_first(args: argparse.Namespace, holder: int | None) -> str:
    """The refusal of a key change while the agent runs, with the exact commands to run."""
    import shlex

    cmd = ["edge-agent", "keys", args.keys_command, "-c", str(args.config)]
    if getattr(args, "channel", None):
        cmd += ["--channel", args.channel]
    if getattr(args, "before", None):
        cmd += ["--before", args.before]
    cmd += [flag for flag in ("--all", "--yes") if getattr(args, flag[2:], False)]
    pid = f" (pid {holder})" if holder is not None else ""
    return (f"keys {args.keys_command}: the agent is running{pid} and holds the channel "
            "stores; a running agent would not see the key change. Run:\n"
            f"  sudo systemctl stop edge-agent && sudo {shlex.join(cmd)} && "
            "sudo systemctl start edge-agent\n"
            "(buffered readings stay in the store meanwhile; the agent sends them after the "
            "start)")


# Key changes a running agent would not see (its keyrings are cached): a pruned key could be
# the one it is about to write with. They need the agent stopped.
CHANGES_KEYS = frozenset({"rotate", "prune", "shred"})


@contextlib.contextmanager
def agent_stopped(cfg: Any, channels: list[Channel]) -> Iterator[None]:
    """Hold each channel store's lock: refused (StoreLockedError) while an agent runs, and
    no agent can start meanwhile."""
    locks: list[StoreLock] = []
    try:
        for ch in channels:
            d = cfg.state_dir / "store" / ch.value
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            locks.append(StoreLock(d))
        yield
    finally:
        for lock in locks:
            lock.release()


def run(args: argparse.Namespace) -> int:
    from edge_agent.daemon import logsetup

    # a person reads this terminal: audit events (created, rotated, shredded) go to the
    # journal with their fields, warnings to stderr in plain words
    logsetup.setup_interactive()
    out = sys.stdout
    if args.keys_command == "platform":
        return cmd_platform(args, out)
    from edge_agent.config import load_config
    from edge_agent.devices.registry import SENSOR_TYPES

    try:
        cfg = load_config(args.config, SENSOR_TYPES)
    except ConfigError as exc:
        for prob in exc.problems:
            print(prob.format(), file=sys.stderr)
        return 2
    handlers = {"init": cmd_init, "status": cmd_status, "rotate": cmd_rotate,
                "prune": cmd_prune, "shred": cmd_shred, "export": cmd_export}
    try:
        owner_ids(getattr(args, "owner", None))  # a wrong --owner: refused before any change
        if args.keys_command not in CHANGES_KEYS:
            return handlers[args.keys_command](cfg, args, out)
        with agent_stopped(cfg, _channels(cfg, args.channel)):
            return handlers[args.keys_command](cfg, args, out)
    except StoreLockedError as exc:
        print(stop_first(args, exc.holder), file=sys.stderr)
        return 1
    except (EdgeAgentError, OSError, ValueError) as exc:
        if isinstance(exc, PermissionError):
            secevents.emit("key", "failure", detail=str(exc))
        print(f"keys {args.keys_command}: {exc}", file=sys.stderr)
        return 1
