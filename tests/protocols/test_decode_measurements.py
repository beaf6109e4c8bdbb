"""``decode`` prints what would be published the same way for every meter protocol."""

from __future__ import annotations

import io
import json
from pathlib import Path

from edge_agent.cli.decode import run_decode
from edge_agent.devices.dsmr.emulator import encode_telegram

KEYS = {"obis", "name", "value", "unit", "time"}
CAPTURES = Path(__file__).resolve().parents[2] / "edge_agent" / "devices" / "dlms_hdlc" / \
    "tests" / "captures"


def measurements(protocol: str, path: Path, **kw: object) -> list[dict[str, object]]:
    out = io.StringIO()
    assert run_decode(protocol, path, out, **kw) == 0  # type: ignore[arg-type]
    frames = [json.loads(line)["frame"] for line in out.getvalue().splitlines()]
    return [m for f in frames for m in f.get("measurements", [])]


def test_dsmr_iec_and_dlms_measurements_have_one_shape(tmp_path: Path) -> None:
    p1 = tmp_path / "p1.bin"
    p1.write_bytes(encode_telegram("ISK5\\2M550T-1012", ["0-0:1.0.0(200426223325S)",
                                                         "1-0:1.8.1(002130.115*kWh)"]))
    iec = tmp_path / "iec.bin"
    block = b"\x021.8.0(001234.5*kWh)\r\n32.7.0(230.1*V)\r\n!\r\n\x03"
    bcc = 0
    for b in block[1:]:
        bcc ^= b
    iec.write_bytes(block + bytes([bcc]))
    dsmr = measurements("dsmr-p1", p1)
    readout = measurements("iec62056-21", iec)
    dlms = measurements("dlms-hdlc", CAPTURES / "amshan_kaifa_se_list.hex")
    for ms in (dsmr, readout, dlms):
        assert ms and all(set(m) == KEYS for m in ms)
    assert {"obis": "1-0:1.8.1", "name": "energy_import_t1", "value": 2130115.0,
            "unit": "Wh", "time": 1587933205.0} in dsmr
    assert {"obis": "1-0:32.7.0", "name": "voltage_l1", "value": 230.1, "unit": "V",
            "time": None} in readout
    current = next(m for m in dlms if m["name"] == "current_l1")
    assert (current["value"], current["unit"]) == (6.781, "A") and current["time"] is not None
