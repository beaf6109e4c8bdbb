"""``edge-agent replay``: recorded readings through the welfare rules, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli.main import main

from .helpers import SITE, T0, H

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(SITE)
    return p


def lines(*recs: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


def test_replay_prints_events_as_json_lines(site_file: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(lines(
        {"t": T0, "sensor": "pir-hall", "name": "motion", "v": True},
        {"t": T0 + 90, "sensor": "pendant", "name": "activity", "v": 1.5},
        {"t": T0 + 9 * H, "sensor": "climate-living", "name": "temperature", "v": 22.5},
        {"t": T0 + 9 * H + 60, "sensor": "sos-button", "name": "pressed", "v": True},
    ))
    assert main(["replay", "-c", str(site_file), str(f)]) == 0
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [(e["t"], e["kind"], e["level"], e["state"]) for e in out] == [
        (T0 + 8 * H, "inactivity", "caution", "raised"),
        (T0 + 9 * H + 60, "inactivity", "caution", "resolved")]
    assert out[0]["since"] == T0 and out[0]["subject"] == "resident-1"
    assert out[0]["evidence"] == {"pir-hall": T0, "pendant": T0 + 90}


def test_until_fires_the_timers_after_the_last_reading(
        site_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(lines({"t": T0, "sensor": "pendant", "name": "fall", "v": True}))
    assert main(["replay", "-c", str(site_file), str(f), "--until", str(T0 + 61)]) == 0
    (ev,) = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert (ev["kind"], ev["level"], ev["t"]) == ("fall", "alarm", T0 + 60)


def test_malformed_lines_are_named_and_exit_1(site_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(
        lines({"t": T0, "sensor": "pir-hall", "name": "motion", "v": True})
        + "{not json\n"
        + "\n"  # blank lines are skipped, not errors
        + lines({"t": "soon", "sensor": "pir-hall", "name": "motion", "v": True},
                {"sensor": "pir-hall", "name": "motion", "v": True},
                {"t": T0 + 90, "sensor": "pir-hall", "name": "motion", "v": [1]},
                {"t": T0 + 90, "sensor": "pir-hall", "name": "motion", "v": True}))
    assert main(["replay", "-c", str(site_file), str(f), "--until", str(T0 + 9 * H)]) == 1
    cap = capsys.readouterr()
    bad = [ln for ln in cap.err.splitlines() if ": malformed reading" in ln]
    assert [ln.split(": malformed")[0] for ln in bad] == [f"{f}:{n}" for n in (2, 4, 5, 6)]
    assert "Expected `float`" in bad[1] and "missing required field `t`" in bad[2]
    assert "2 readings" in cap.err and "4 malformed" in cap.err
    # the good lines were still replayed
    assert [json.loads(ln)["level"] for ln in cap.out.splitlines()] == ["caution"]


def test_unsynced_lines_are_read_but_ignored(site_file: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(lines(
        {"t": T0, "sensor": "pir-hall", "name": "motion", "v": True},
        {"t": T0 + 90, "sensor": "pendant", "name": "activity", "v": 1.5},
        {"t": T0 + 2 * H, "sensor": "pendant", "name": "activity", "v": 1.5,
         "clock_": "unsynced"},
        {"t": 5000, "sensor": "radar-bed", "name": "fall", "v": True, "clock_": "unsynced"},
    ))
    assert main(["replay", "-c", str(site_file), str(f), "--until", str(T0 + 8 * H)]) == 0
    cap = capsys.readouterr()
    assert [json.loads(ln)["since"] for ln in cap.out.splitlines()] == [T0]
    assert "(2 unsynced, ignored)" in cap.err


def test_usage_errors_exit_2(site_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "-c", str(site_file), str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    no_rules = tmp_path / "plain.yaml"
    no_rules.write_text(SITE[:SITE.index("welfare:")])
    assert main(["replay", "-c", str(no_rules), "-"]) == 2
    assert "no welfare: rules" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.replace("caution: 8h", "caution: 8 hours"))
    assert main(["replay", "-c", str(bad), "-"]) == 2
    assert "welfare[0].inactivity.caution: expected a duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["replay", str(tmp_path / "x.jsonl")])  # no -c
    assert ei.value.code == 2


def test_replay_console_exit_status_through_a_real_process(site_file: Path) -> None:
    data = lines({"t": T0, "sensor": "pir-hall", "name": "motion", "v": True}) + "oops\n"
    r = subprocess.run([sys.executable, "-m", "edge_agent", "replay", "-c", str(site_file),
                        "-"], input=data, capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 1, r.stderr
    assert "<stdin>:2: malformed reading" in r.stderr
