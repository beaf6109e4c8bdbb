"""The HIL VM images' cache keys and the ingest bench's CPU figure (the arm64 rig compares
it between guest and host)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hil.bench.ingest import store_ingest
from hil.vm import image


def test_each_architecture_is_keyed_by_its_own_recipe() -> None:
    # a change to the arm64 recipe must not rebuild the amd64 image, nor the other way round
    for arch, name in (("amd64", "recipe.sh"), ("arm64", "recipe_arm64.sh")):
        recipe = Path(image.__file__).parent / name
        digest = hashlib.sha256(recipe.read_bytes()).hexdigest()
        assert image.recipe_hash(arch) == digest
        assert image.image_dir(arch).name == f"{arch}-{digest[:16]}"
        assert image.image_arch(image.image_dir(arch)) == arch
    assert image.recipe_hash("amd64") != image.recipe_hash("arm64")


def test_a_directory_outside_the_cache_naming_is_refused(tmp_path: Path) -> None:
    with pytest.raises(image.ImageError):
        image.image_arch(tmp_path / "riscv64-0123")


def test_store_ingest_reports_rate_and_cpu_seconds_per_million(tmp_path: Path) -> None:
    rate, cpu_per_m = store_ingest(tmp_path, 2000, 1000)
    assert rate > 0
    # CPU-s per million, on the scale of the wall seconds a million take at this rate (not
    # per reading, not per batch): the loop is one thread, fsync waits are not CPU
    wall_per_m = 1e6 / rate
    assert wall_per_m / 1000 < cpu_per_m < 2 * wall_per_m
