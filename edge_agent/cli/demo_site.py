"""``edge-agent demo --config SITE.yaml``: a site file made runnable on this machine.

The site's sensors, channels, topics, store settings, welfare rules and escalation stay as
written; what only the real node has is replaced by throwaway things made in the demo's
temporary directory, and each replacement is listed for the screen:

- ``hardware`` becomes ``emulated`` (every device emulated in-process, docs/design/0010);
- each channel's brokers become one local mosquitto per channel with a throwaway CA and
  broker certificate (mutual TLS with a throwaway client certificate where the site has
  ``tls.cert_file``); a username and password file are dropped;
- at-rest keys, the pseudonym key and the node signing key are created in a temporary
  state dir; the IT seal goes to a throwaway platform key pair (the demo opens it);
- meter key files (DLMS, encrypted P1) become throwaway keys shared with the emulated meter;
  an escalation numbers file a throwaway number; the metrics textfile a temporary file.

A site file with problems is refused with check-config's lines, except the problems of the
files replaced here (a certificate not yet installed is what a demo is for).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_agent.core.errors import ConfigError, ConfigProblem

# the keys whose files the demo replaces: their problems do not stop a demo
_CHANNEL_FILES = ("tls.ca_file", "tls.cert_file", "tls.key_file", "tls",
                  "seal.public_key_file", "key_file", "password_file")
_SENSOR_FILES = ("key_file", "auth_key_file")
DAYS = 365  # throwaway certificates: valid long enough that no expiry warning distracts


@dataclass
class DemoBroker:
    """What the demo starts for one channel."""

    channel: str
    port: int
    ca: Path
    cert: Path
    key: Path
    mutual: bool  # the site uses a client certificate on this channel
    platform: tuple[Path, Path] | None  # the consumer's client cert and key (mutual TLS)

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"


@dataclass
class DemoSite:
    path: Path  # the rewritten copy the agent runs
    brokers: dict[str, DemoBroker]
    replaced: list[str] = field(default_factory=list)  # one line each, for the screen
    platform_key: Any = None  # the throwaway HPKE private key the IT channel seals to


def replaced_path(path: str) -> bool:
    """Whether a problem at this dotted path concerns something the demo replaces."""
    parts = path.split(".")
    if path in ("state_dir", "hardware", "metrics.textfile", "escalate.numbers_file"):
        return True
    if parts[0] == "channels" and len(parts) >= 3:
        rest = ".".join(parts[2:])
        return rest.startswith(_CHANNEL_FILES)
    if parts[0].startswith("sensors[") and len(parts) >= 2:
        return parts[1] in _SENSOR_FILES
    return False


def site_problems(site_file: Path) -> list[ConfigProblem]:
    """check-config's problems of the site file that a demo cannot replace (empty: it runs)."""
    from edge_agent.cli.common import load_site

    try:
        load_site(site_file)
    except ConfigError as exc:
        return [p for p in exc.problems if not replaced_path(p.path)]
    return []


def _write_secret(path: Path, text: str) -> Path:
    from edge_agent.core.fsutil import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, text.encode(), 0o600)
    return path


def _meter_keys(path: Path, auth_only: bool = False) -> Path:
    ak = f"AK={secrets.token_hex(16).upper()}\n"
    return _write_secret(path, ak if auth_only else f"EK={secrets.token_hex(16).upper()}\n{ak}")


def prepare(site_file: Path, work: Path) -> DemoSite:
    """Write the demo copy of ``site_file`` into ``work``, with a free loopback port and
    throwaway certificates for each channel's broker. The caller has checked the file with
    :func:`site_problems`."""
    from edge_agent.security import pki
    from edge_agent.tools.mosquitto import free_port

    tree: Any = yaml.safe_load(site_file.read_text(encoding="utf-8"))
    replaced: list[str] = []
    state = work / "state"
    if tree.get("hardware") != "emulated":
        replaced.append(f"hardware: {tree.get('hardware')} -> emulated (every device emulated "
                        "in this process)")
    tree["hardware"] = "emulated"
    tree["state_dir"] = str(state)
    replaced.append(f"state_dir -> {state} (new at-rest, pseudonym and signing keys)")
    pki_dir = work / "pki"
    brokers: dict[str, DemoBroker] = {}
    seal_public: Path | None = None
    platform_key: Any = None
    for ch, cc in (tree.get("channels") or {}).items():
        ca = pki.make_ca(pki_dir, f"demo-{ch}-ca", days=DAYS)
        server = pki.make_cert(ca, pki_dir, f"demo-{ch}-broker", server=True, days=DAYS)
        tls = dict(cc.get("tls") or {})
        mutual = tls.get("cert_file") is not None
        was = ", ".join(str(b) for b in cc.get("brokers") or [])
        new_tls: dict[str, Any] = {"ca_file": str(ca.cert)}
        if "min_version" in tls:
            new_tls["min_version"] = tls["min_version"]
        platform = None
        if mutual:
            client = pki.make_cert(ca, pki_dir, f"demo-{ch}-client", days=DAYS)
            new_tls.update(cert_file=str(client.cert), key_file=str(client.key))
            p = pki.make_cert(ca, pki_dir, f"demo-{ch}-platform", days=DAYS)
            platform = (p.cert, p.key)
        b = DemoBroker(ch, free_port(), ca.cert, server.cert, server.key, mutual, platform)
        cc["brokers"] = [b.url]
        cc["tls"] = new_tls
        replaced.append(f"channel {ch}: brokers {was} -> {b.url}, TLS with a throwaway CA"
                        f"{' and client certificate' if mutual else ''} ({pki_dir})")
        for k in ("username", "password_file", "bind_address", "key_file"):
            if k in cc:
                replaced.append(f"channel {ch}: {k} dropped")
                del cc[k]
        seal = cc.get("seal")
        if isinstance(seal, dict) and seal.get("enabled", True):
            if seal_public is None:
                from edge_agent.security import seal as hpke

                suite = str(seal.get("suite", "x25519"))
                seal_public = work / "platform" / "it-seal.pub"
                pair = hpke.generate_files(suite, work / "platform" / "it-seal.key",  # type: ignore[arg-type]
                                           seal_public)
                platform_key = pair.private_key
            seal["public_key_file"] = str(seal_public)
            replaced.append(f"channel {ch}: sealed to a throwaway platform key "
                            f"({seal_public}); the demo opens what arrives")
        brokers[ch] = b
    for i, s in enumerate(tree.get("sensors") or []):
        for k in _SENSOR_FILES:
            if isinstance(s, dict) and s.get(k) is not None:
                s[k] = str(_meter_keys(work / "meter-keys" / f"{i}-{k}",
                                       auth_only=k == "auth_key_file"))
                replaced.append(f"sensor {s.get('id')}: {k} -> throwaway meter keys "
                                "(the emulated meter uses the same)")
    esc = tree.get("escalate")
    if isinstance(esc, dict) and esc.get("numbers_file") is not None:
        esc["numbers_file"] = str(_write_secret(work / "escalation-numbers", "+821000000000\n"))
        replaced.append("escalate: numbers_file -> one throwaway number (the modem is emulated)")
    metrics = tree.get("metrics")
    if isinstance(metrics, dict) and metrics.get("textfile") is not None:
        metrics["textfile"] = str(work / "metrics" / "edge_agent.prom")
        (work / "metrics").mkdir(exist_ok=True)
        replaced.append(f"metrics: textfile -> {metrics['textfile']}")
    out = work / "site.yaml"
    out.write_text(f"# demo copy of {site_file}: see `edge-agent demo --help`\n"
                   + yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    os.chmod(out, 0o600)
    return DemoSite(out, brokers, replaced, platform_key)


def broker_listener(b: DemoBroker) -> str:
    """The mosquitto listener settings for a channel's demo broker."""
    return (f"cafile {b.ca}\ncertfile {b.cert}\nkeyfile {b.key}\n"
            f"require_certificate {'true' if b.mutual else 'false'}\n")
