"""The HIL VM's image and per-run files.

    python -m hil.vm.image ensure [--arch amd64]   # print the cached image dir (build if stale)
    python -m hil.vm.image prepare RUNDIR IMAGEDIR # overlay disk + payload disk with wheels
    python -m hil.vm.image accel IMAGEDIR          # "kvm" if a probe boot works, else "tcg"

The amd64 image is built by ``hil/vm/recipe.sh`` (debootstrap, Debian kernel, gpio-sim),
the arm64 smoke image by ``hil/vm/recipe_arm64.sh`` (the same system, with only the
package installation emulated), into ``~/.cache/edge-agent-hil/<arch>-<hash>/``, where
``<hash>`` is the recipe's sha256: a changed recipe builds a new image, an unchanged one is
reused. Each run gets a qcow2 overlay (the cached image is never written) and a payload
disk holding the wheels built on the host and the repository's ``systemd/``, ``configs/``,
``hil/`` and README, from which the guest installs the agent offline with
``systemd/install.sh``, as a technician does (and runs the benchmarks, on arm64).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
RECIPES = {"amd64": Path(__file__).resolve().parent / "recipe.sh",
           "arm64": Path(__file__).resolve().parent / "recipe_arm64.sh"}
CACHE = Path(os.environ.get("EDGE_HIL_CACHE", Path.home() / ".cache" / "edge-agent-hil"))
QEMU = {"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}


class ImageError(RuntimeError):
    pass


def recipe_hash(arch: str = "amd64") -> str:
    return hashlib.sha256(RECIPES[arch].read_bytes()).hexdigest()


def image_dir(arch: str = "amd64") -> Path:
    return CACHE / f"{arch}-{recipe_hash(arch)[:16]}"


def ensure(arch: str = "amd64", log: Path | None = None) -> Path:
    """The image for the current recipe, built (as root, niced) when it is not cached.
    A second run asking for the same image meanwhile waits for the first one's build."""
    want = recipe_hash(arch)  # the recipe as it is now (image_dir names its directory)
    out = image_dir(arch)
    stamp = out / "recipe.sha256"
    if stamp.exists() and stamp.read_text().strip() == want:
        return out
    if os.geteuid() != 0:
        raise ImageError("building the VM image needs root (debootstrap, chroot)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == want:
            return out
        return _build(arch, out, log, want)


def _build(arch: str, out: Path, log: Path | None, want: str) -> Path:
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    logf = log or out.with_name(out.name + ".log")
    with open(logf, "w") as f:
        r = subprocess.run(["nice", "-n", "10", "bash", str(RECIPES[arch]), str(tmp), arch],
                           stdout=f, stderr=subprocess.STDOUT, check=False)
    if r.returncode != 0:
        unmount_below(tmp)  # debootstrap's and the recipe's proc, sys, dev mounts
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageError(f"recipe failed (exit {r.returncode}); see {logf}")
    (tmp / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
    (tmp / "recipe.sha256").write_text(want + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    for old in CACHE.glob(f"{arch}-*"):  # earlier recipes' images
        if old != out and not old.name.endswith(".log"):
            shutil.rmtree(old, ignore_errors=True)
    return out


def unmount_below(path: Path) -> None:
    """Lazily unmount every mount point below ``path``, deepest first."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# pip's platform tags for the guest's interpreter (Debian 12: CPython 3.11, glibc 2.36)
PLATFORMS = {"arm64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64",
                       "manylinux_2_34_aarch64", "manylinux_2_36_aarch64"]}


def build_wheels(dest: Path, arch: str = "amd64") -> list[Path]:
    """The agent's wheel and every dependency's (with the ``[pi]`` extra), for offline
    installation in the guest. The agent is pure Python; for another architecture its
    dependencies' wheels for that platform come from the package index (``pip download
    --platform``), as a Pi would get them."""
    dest.mkdir(parents=True, exist_ok=True)
    if arch not in PLATFORMS:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                        str(dest), f"{REPO}[pi]"], check=True)
        return sorted(dest.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(dest), str(REPO)], check=True)
    agent = next(dest.glob("edge_agent-*.whl"))
    platforms = [a for p in PLATFORMS[arch] for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
                    "--only-binary=:all:", *platforms, "--python-version", "3.11",
                    "--implementation", "cp", f"{agent}[pi]"], check=True)
    return sorted(dest.glob("*.whl"))


def image_arch(image: Path) -> str:
    """The architecture an image directory was built for (its name: ``<arch>-<hash>``)."""
    arch = image.name.split("-", 1)[0]
    if arch not in QEMU:
        raise ImageError(f"{image}: not an image directory of this cache (<arch>-<hash>)")
    return arch


def prepare(run: Path, image: Path) -> dict[str, Path]:
    """The run's writable root disk (a qcow2 overlay) and its payload disk."""
    run.mkdir(parents=True, exist_ok=True)
    overlay = run / "root.qcow2"
    if overlay.exists():
        overlay.unlink()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                    "-b", str(image / "disk.img"), str(overlay)], check=True)
    payload = run / "payload"
    shutil.rmtree(payload, ignore_errors=True)
    build_wheels(payload / "wheels", image_arch(image))
    repo = payload / "repo"
    for part in ("systemd", "configs"):
        shutil.copytree(REPO / part, repo / part)
    # the benchmarks' source, for the guest's own figures (``python -m hil.bench.ingest``
    # in this directory, with the installed agent's interpreter)
    shutil.copytree(REPO / "hil", repo / "hil",
                    ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    shutil.copy2(REPO / "README.md", repo / "README.md")
    disk = run / "payload.img"
    if disk.exists():
        disk.unlink()
    size_mb = 64 + sum(f.stat().st_size for f in payload.rglob("*") if f.is_file()) // 2**20
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "payload", "-d", str(payload), str(disk),
                    f"{size_mb}M"], check=True)
    return {"root": overlay, "payload": disk}


def probe_kvm(image: Path, timeout: float = 25.0) -> bool:
    """Boot the image's kernel under KVM until userspace starts; False on any failure.

    A /dev/kvm node is no proof (a paravirtual KVM may not run a stock kernel), so the
    decision is made by measuring a boot.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cmd = [QEMU["amd64"], "-accel", "kvm", "-m", "512", "-nographic", "-no-reboot",
           "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
           "-append", "console=ttyS0 panic=-1 rdinit=/bin/false", "-nic", "none"]
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError:
        return False
    assert p.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and p.poll() is None:
            ready, _, _ = select.select([p.stdout], [], [], 0.5)
            if ready:
                seen += os.read(p.stdout.fileno(), 65536)
                if b"Run /bin/false as init process" in seen or b"Freeing unused" in seen:
                    return True
        return False
    finally:
        p.kill()
        p.wait()


def accel(image: Path) -> str:
    """``kvm`` when a probe boot works, else ``tcg`` (cached per image)."""
    cached = image / "accel"
    forced = os.environ.get("EDGE_HIL_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if image_arch(image) != "amd64":
        return "tcg"  # another architecture: emulated, whatever /dev/kvm can do
    if cached.exists():
        return cached.read_text().strip()
    choice = "kvm" if probe_kvm(image) else "tcg"
    cached.write_text(choice + "\n")
    return choice


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.vm.image")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ensure")
    e.add_argument("--arch", default="amd64", choices=sorted(QEMU))
    pr = sub.add_parser("prepare")
    pr.add_argument("run", type=Path)
    pr.add_argument("image", type=Path)
    a = sub.add_parser("accel")
    a.add_argument("image", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "ensure":
            print(ensure(args.arch))
        elif args.cmd == "prepare":
            for name, path in prepare(args.run, args.image).items():
                print(f"{name} {path}")
        else:
            print(accel(args.image))
    except (ImageError, subprocess.CalledProcessError) as exc:
        print(f"hil image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
