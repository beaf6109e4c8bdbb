"""The systemd unit (systemd-analyze verify / security) and install.sh (dry run, prefix
install, upgrade, uninstall with crypto-shredding)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "edge-agent.service"
INSTALL = REPO / "systemd" / "install.sh"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = UNIT.read_text()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M)
    out = tmp_path / "edge-agent.service"
    out.write_text(text)
    return out


@needs_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    assert ANALYZE is not None
    r = subprocess.run([ANALYZE, "verify", str(unit_copy(tmp_path))], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    problems = [ln for ln in r.stderr.splitlines() if "edge-agent.service" in ln]
    assert problems == [], problems


@needs_analyze
def test_unit_exposure_at_most_1_5(tmp_path: Path) -> None:
    assert ANALYZE is not None
    r = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager",
                        str(unit_copy(tmp_path))], capture_output=True, text=True, timeout=60,
                       check=False)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 1.5, r.stdout


def test_unit_contract() -> None:
    """The settings the agent's behaviour depends on."""
    text = UNIT.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "User=edge-agent", "SupplementaryGroups=i2c gpio dialout",
                 "StateDirectory=edge-agent", "ConfigurationDirectory=edge-agent",
                 "DevicePolicy=closed", "UMask=0077", "RestartPreventExitStatus=2",
                 "RuntimeDirectory=edge-agent", "RuntimeDirectoryPreserve=yes"):
        assert f"\n{line}\n" in text, line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    # lgpio creates its notification pipes in the working directory: it must be writable
    # under ProtectSystem=strict (the default "/" is not)
    assert "\nRuntimeDirectory=edge-agent\n" in text
    assert "\nWorkingDirectory=/run/edge-agent\n" in text
    # the live view's socket lives there: the service's group must reach it (0660 itself)
    assert set(re.findall(r"^RuntimeDirectoryMode=(\d+)$", text, re.M)) == {"0750"}
    assert "run -c /etc/edge-agent/site.yaml" in text


def sh(*args: str, env: dict[str, str] | None = None,
       stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    e.update(env or {})
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=300, check=False, env=e, stdin=stdin)


def test_install_script_syntax() -> None:
    r = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True,
                           check=False)
        assert r.returncode == 0, r.stdout


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = sh("--dry-run", "--prefix", str(root))
    assert r.returncode == 0, r.stderr
    assert f"+ python3 -m venv {root}/opt/edge-agent/venv" in r.stdout
    assert f"{root}/etc/systemd/system/edge-agent.service" in r.stdout
    assert list(root.iterdir()) == []
    if os.geteuid() == 0:  # the real layout: prints user creation and paths under /
        r = sh("--dry-run")
        assert r.returncode == 0, r.stderr
        assert "/opt/edge-agent/venv" in r.stdout
        assert "install -m 0644" in r.stdout and " /etc/systemd/system/edge-agent.service" in \
            r.stdout
        if subprocess.run(["id", "-u", "edge-agent"], capture_output=True,
                          check=False).returncode != 0:
            assert "+ useradd --system" in r.stdout


def test_prefix_install_upgrade_uninstall(tmp_path: Path) -> None:
    """Installs the package from this checkout into a venv under a fake root (the deps
    come from the test interpreter via a .pth file, to stay fast and offline-friendly)."""
    root = tmp_path / "root"
    r = sh("--prefix", str(root), "--pip-arg", "--no-deps")
    assert r.returncode == 0, r.stdout + r.stderr
    venv = root / "opt/edge-agent/venv"
    etc = root / "etc/edge-agent"
    state = root / "var/lib/edge-agent"
    assert (root / "etc/systemd/system/edge-agent.service").read_text() == UNIT.read_text()
    tmpfiles = root / "etc/tmpfiles.d/edge-agent.conf"
    assert "d /run/edge-agent-metrics 0755 edge-agent edge-agent -" in tmpfiles.read_text()
    assert (etc / "site.yaml").read_text() == (REPO / "configs/elderly-home.yaml").read_text()
    assert (etc / "site.yaml.example").exists() and (etc / "edge-agent.env").exists()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    link = root / "usr/local/bin/edge-agent"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin/edge-agent"
    # the installed program runs (dependencies borrowed from this interpreter)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    v = subprocess.run([str(link), "--version"], capture_output=True, text=True, check=False)
    assert v.returncode == 0 and v.stdout.startswith("edge-agent "), v.stderr

    # upgrade: config and state (keys, buffered data) untouched
    (etc / "site.yaml").write_text("site: edited\n")
    (state / "keys").mkdir(mode=0o700)
    (state / "keys" / "ot.key").write_text("11" * 32 + "\n")
    (state / "store").mkdir()
    (state / "store" / "segment").write_bytes(b"buffered")
    r = sh("--prefix", str(root), "--pip-arg", "--no-deps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "keeping the existing" in r.stdout and "keeping " + str(state) in r.stdout
    assert (etc / "site.yaml").read_text() == "site: edited\n"
    assert (state / "store" / "segment").read_bytes() == b"buffered"
    assert (state / "keys" / "ot.key").exists()

    # uninstall without --purge and without a terminal: program gone, data kept
    r = sh("--prefix", str(root), "--uninstall")
    assert r.returncode == 0, r.stderr
    assert not venv.exists() and not link.exists() and not tmpfiles.exists()
    assert (state / "keys" / "ot.key").exists() and (etc / "site.yaml").exists()
    # --purge --dry-run: shows the shredding, does nothing
    r = sh("--prefix", str(root), "--uninstall", "--purge", "--dry-run")
    assert "shred -u" in r.stdout and (state / "keys" / "ot.key").exists()
    # --purge: keys shredded first, then everything
    r = sh("--prefix", str(root), "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("crypto-shredding") < r.stdout.index("uninstalled")
    assert not state.exists() and not etc.exists()


def test_first_install_names_the_node_from_the_machine_id(tmp_path: Path) -> None:
    """No shipped config has a default node name; the installer writes one per machine
    (EDGE_NODE in edge-agent.env), --node overrides it, a bad name is refused."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123abcd" + "e" * 24 + "\n")
    r = sh("--dry-run", "--prefix", str(root))
    assert r.returncode == 0, r.stderr
    assert "EDGE_NODE=pi-0123abcd" in r.stdout and "named pi-0123abcd" in r.stdout
    # a dry run ends by saying it changed nothing, not that the program failed to run
    assert r.stdout.rstrip().splitlines()[-1].endswith("dry run: nothing was changed")
    assert "not runnable" not in r.stdout
    r = sh("--dry-run", "--prefix", str(root), "--node", "pi-0042")
    assert "EDGE_NODE=pi-0042" in r.stdout and "pi-0123abcd" not in r.stdout
    r = sh("--dry-run", "--prefix", str(root), "--node", "pi 42;rm")
    assert r.returncode == 2 and "not valid" in r.stderr


def test_install_brings_the_gpio_backend(tmp_path: Path) -> None:
    """lgpio (the ``[pi]`` extra) is installed with the program: without it every GPIO
    sensor fails to open on a Pi. ``--without-gpio`` leaves it out."""
    root = tmp_path / "root"
    r = sh("--dry-run", "--prefix", str(root))
    assert r.returncode == 0, r.stderr
    pip = [ln for ln in r.stdout.splitlines() if " -m pip install " in ln]
    assert pip and pip[0].endswith(f"{REPO}\\[pi\\]"), pip
    assert "+ sync" in r.stdout  # written out before a power cut can empty the unit file
    r = sh("--dry-run", "--prefix", str(root), "--without-gpio")
    pip = [ln for ln in r.stdout.splitlines() if " -m pip install " in ln]
    assert pip and pip[0].endswith(str(REPO)), pip


def test_install_gives_the_gpio_group_its_chips_on_plain_debian(tmp_path: Path) -> None:
    """Plain Debian leaves /dev/gpiochipN root-only; Raspberry Pi OS has a udev rule giving
    the gpio group access. install.sh adds that rule where none exists, and only there."""
    root = tmp_path / "root"
    rule = root / "etc/udev/rules.d/60-edge-agent-gpio.rules"
    r = sh("--prefix", str(root), "--pip-arg", "--no-deps")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in rule.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ['SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"']
    r = sh("--prefix", str(root), "--uninstall")
    assert r.returncode == 0 and not rule.exists(), r.stdout + r.stderr
    # Raspberry Pi OS: its own rule (99-com.rules) already gives the group
    pios = root / "usr/lib/udev/rules.d/99-com.rules"
    pios.parent.mkdir(parents=True)
    pios.write_text('SUBSYSTEM=="gpio", GROUP="gpio", MODE="0660"\n')
    r = sh("--prefix", str(root), "--pip-arg", "--no-deps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not rule.exists() and "get their group from" in r.stdout
    r = sh("--dry-run", "--prefix", str(tmp_path / "other"), "--without-gpio")
    assert "60-edge-agent-gpio.rules" not in r.stdout
