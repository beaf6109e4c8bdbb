from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import load_config, parse_config
from edge_agent.config.types import BrokerURL, ByteSize, Duration
from edge_agent.core.errors import ConfigError
from edge_agent.core.model import Channel, Priority
from edge_agent.devices.registry import SENSOR_TYPES

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
site: namwon-01
node: pi-0042
hardware: emulated
state_dir: /var/lib/edge-agent
channels:
  ot:
    brokers: [mqtts://ot.city.example:8883, mqtts://ot2.city.example]
  it:
    brokers: [mqtts://it.city.example:8883]
    seal: {enabled: false}
store:
  commit_interval: 500ms
  max_bytes: 64MiB
  retention: {it: 7d, ot: 30d}
sensors:
  - id: gen
    type: load
    rate: 10
"""


def parse(text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_config(text, "site.yaml", Path("/etc/edge-agent"), SENSOR_TYPES, env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        parse(text, env)
    return [p.format() for p in ei.value.problems]


def test_good_config_is_typed() -> None:
    cfg = parse(GOOD)
    assert cfg.site == "namwon-01"
    assert cfg.channels[Channel.OT].brokers[1] == BrokerURL("mqtts", "ot2.city.example", 8883)
    assert cfg.store.commit_interval == pytest.approx(0.5)
    assert cfg.store.max_bytes == 64 * 1024 * 1024
    assert cfg.store.retention[Channel.IT] == 7 * 86400
    (s,) = cfg.sensors
    assert (s.id, s.type, s.channel, s.priority) == ("gen", "load", Channel.OT, Priority.NORMAL)
    assert s.options.rate == 10.0
    assert cfg.key_file(Channel.IT) == Path("/var/lib/edge-agent/keys/it.key")
    assert cfg.topic_prefix(Channel.OT) == "edge/namwon-01/pi-0042/ot"


def test_typo_key_is_located_with_suggestion() -> None:
    out = problems(GOOD.replace("commit_interval", "comit_interval"))
    assert out == ["site.yaml:12: store.comit_interval: unknown key "
                   "(did you mean 'commit_interval'?)"]


def test_wrong_type_and_every_problem_at_once() -> None:
    text = GOOD.replace("rate: 10", "rate: fast").replace("node: pi-0042", "node: [a]")
    out = problems(text)
    assert "site.yaml:2: node: expected a name (letters, digits, '-', '_' or '.'), got a list" \
        in out
    assert "site.yaml:18: sensors[0].rate: expected float, got str 'fast'" in out
    assert len(out) == 2


def test_unknown_sensor_type_and_option() -> None:
    text = GOOD + "  - {id: x, type: thermometer}\n  - {id: y, type: load, colour: red}\n"
    out = problems(text)
    assert any(p.startswith("site.yaml:19: sensors[1].type: unknown sensor type 'thermometer'")
               for p in out), out
    assert any(p.startswith("site.yaml:20: sensors[2].colour: unknown key") for p in out), out


def test_bad_broker_address() -> None:
    out = problems(GOOD.replace("mqtts://it.city.example:8883", "http://it.city.example"))
    assert out == ["site.yaml:9: channels.it.brokers[0]: bad broker URL 'http://it.city.example':"
                   " scheme must be mqtts:// (or mqtt://)"]
    out = problems(GOOD.replace("mqtts://it.city.example:8883", "mqtts://it.city.example:99999"))
    assert "channels.it.brokers[0]" in out[0] and "port" in out[0].lower()


def test_plaintext_broker_refused_unless_allowed() -> None:
    text = GOOD.replace("mqtts://it.city.example:8883", "mqtt://it.city.example")
    out = problems(text)
    assert len(out) == 1
    assert out[0].startswith("site.yaml:9: channels.it.brokers[0]: plaintext "
                             "mqtt://it.city.example:1883 refused")
    ok = parse(text.replace("  it:\n", "  it:\n    allow_insecure: true\n"))
    assert ok.channels[Channel.IT].brokers[0].tls is False


def test_missing_file_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("  it:\n", "  it:\n    tls: {ca_file: /nonexistent/ca.pem}\n")
    out = problems(text)
    assert out == ["site.yaml:9: channels.it.tls.ca_file: file not found: /nonexistent/ca.pem"]


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml", SENSOR_TYPES)
    assert "file not found" in str(ei.value)


def test_required_key_missing_and_channel_undefined() -> None:
    assert "site.yaml:1: site: required key is missing" in problems(
        GOOD.replace("site: namwon-01\n", ""))
    text = GOOD.replace("rate: 10", "rate: 10\n    channel: it").replace(
        "  it:\n    brokers: [mqtts://it.city.example:8883]\n    seal: {enabled: false}\n", "")
    assert problems(text) == ["site.yaml:16: sensors[0].channel: channel 'it' is not defined "
                              "under channels"]


def test_env_substitution() -> None:
    text = GOOD.replace("/var/lib/edge-agent", "${STATE:-/tmp/x}").replace(
        "mqtts://it.city.example:8883", '"${IT_URL}"')
    cfg = parse(text, {"IT_URL": "mqtts://10.0.0.5:8884"})
    assert cfg.state_dir == Path("/tmp/x")
    assert cfg.channels[Channel.IT].brokers[0].port == 8884
    out = problems(text, {})
    assert out[0] == ("site.yaml:9: channels.it.brokers[0]: environment variable ${IT_URL} is "
                      "not set (give it a value or write ${IT_URL:-default})")


def test_duplicate_keys_and_ids_and_yaml_syntax() -> None:
    out = problems(GOOD.replace("node: pi-0042", "node: pi-0042\nnode: again"))
    assert any("node: duplicate key (first given on line 2)" in p for p in out)
    out = problems(GOOD + "  - {id: gen, type: load}\n")
    assert any("sensors[1].id: duplicate sensor id 'gen'" in p for p in out)
    out = problems("site: [unclosed\n")
    assert out == ["site.yaml:1: <root>: the [ opened here is never closed: add the ]"]


def test_python_tags_refused() -> None:
    out = problems(GOOD.replace("node: pi-0042", "node: !!python/object:os.system x"))
    assert any("node: YAML tag" in p for p in out)


def test_value_types() -> None:
    assert Duration.__config_parse__("250ms") == pytest.approx(0.25)
    assert Duration.__config_parse__(3) == 3.0
    assert ByteSize.__config_parse__("1GiB") == 1024**3
    for bad in ("soon", "-1s", True):
        with pytest.raises(ValueError):
            Duration.__config_parse__(bad)
    assert str(BrokerURL.parse("mqtt://[::1]:1884")) == "mqtt://[::1]:1884"
    with pytest.raises(ValueError):
        BrokerURL.parse("mqtts://user:pw@host")


@pytest.mark.parametrize("name", ["demo.yaml", "elderly-home.yaml", "meter-room.yaml",
                                  "mixed.yaml"])
def test_shipped_configs_pass(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "configs" / name
    if name != "demo.yaml":
        pytest.importorskip("edge_agent.devices.dsmr.driver")
    from edge_agent.security.seal import generate_files

    generate_files("x25519", tmp_path / "platform.key", tmp_path / "platform.pub")
    for ch in ("ot", "it"):  # the site examples name TLS files under ${EDGE_TLS_DIR}
        (tmp_path / "tls" / ch).mkdir(parents=True)
        for f in ("ca.pem", "client.pem", "client.key"):
            (tmp_path / "tls" / ch / f).write_text("placeholder\n")
    cfg = load_config(path, SENSOR_TYPES, env={"EDGE_STATE_DIR": str(tmp_path), "EDGE_NODE": "pi-t",
                                               "EDGE_TLS_DIR": str(tmp_path / "tls"),
                                               "EDGE_IT_SEAL_KEY": str(tmp_path / "platform.pub")})
    assert cfg.sensors


@dataclass(frozen=True)
class _Dummy:
    a: int = 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300))
def test_fuzz_config_text_never_crashes(text: str) -> None:
    """Any text is either a valid config or a ConfigError with located problems."""
    try:
        parse(text)
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.format().startswith("site.yaml:")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["site", "node", "hardware", "state_dir", "channels",
                                        "store", "sensors", "bogus"]),
                       st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(),
                                 st.lists(st.integers(), max_size=2)), max_size=8))
def test_fuzz_config_shapes(doc: dict[str, object]) -> None:
    import yaml

    try:
        parse(yaml.safe_dump(doc))
    except ConfigError as exc:
        assert all(p.line >= 1 for p in exc.problems)


def test_unknown_home_directory_is_a_problem_not_a_crash() -> None:
    out = problems(GOOD.replace("/var/lib/edge-agent", "~no-such-user-xyz/state"))
    assert out == ["site.yaml:4: state_dir: cannot expand the home directory in "
                   "'~no-such-user-xyz/state'"]


@pytest.mark.parametrize("key,value", [("site", '"s1/a#"'), ("node", "pi+1"), ("site", '""'),
                                       ("node", '"a b"'), ("site", "x" * 65), ("node", "-x")])
def test_site_and_node_must_be_topic_safe(key: str, value: str) -> None:
    old = {"site": "site: namwon-01", "node": "node: pi-0042"}[key]
    out = problems(GOOD.replace(old, f"{key}: {value}"))
    line = 1 if key == "site" else 2
    assert len(out) == 1, out
    assert out[0].startswith(f"site.yaml:{line}: {key}: must be 1-64 letters, digits, '-', '_' "
                             "or '.'"), out
    assert "(it goes into MQTT topics)" in out[0]


def test_sensor_id_must_be_topic_safe() -> None:
    out = problems(GOOD.replace("id: gen", 'id: "gen/+"'))
    assert out == ["site.yaml:16: sensors[0].id: must be 1-64 letters, digits, '-', '_' or '.', "
                   "starting with a letter or digit (it goes into MQTT topics): 'gen/+'"]
    assert "write it in quotes" in problems(GOOD.replace("id: gen", "id: 42"))[0]
    cfg = parse(GOOD.replace("id: gen", "id: Gen_1.a-b").replace("namwon-01", "x" * 64))
    assert cfg.sensors[0].id == "Gen_1.a-b" and cfg.site == "x" * 64


def test_enum_error_lists_names() -> None:
    out = problems(GOOD.replace("rate: 10", "rate: 10\n    priority: urgent"))
    assert out == ["site.yaml:19: sensors[0].priority: expected one of alarm, normal, bulk, "
                   "got str 'urgent'"]
    cfg = parse(GOOD.replace("rate: 10", "rate: 10\n    priority: Alarm"))
    assert cfg.sensors[0].priority is Priority.ALARM


def test_sensor_key_typo_suggests_common_keys() -> None:
    text = GOOD + "  - {id: t, type: sht31, intervall: 5s}\n"
    out = problems(text)
    assert out == ["site.yaml:19: sensors[1].intervall: unknown key (did you mean 'interval'?)"]
    out = problems(GOOD + "  - {id: t, type: sht31, zzz: 1}\n")
    assert len(out) == 1 and "expected one of:" in out[0], out
    assert "interval" in out[0] and "address" in out[0], out
    assert problems(GOOD.replace("sensors:", "sensor:")) == [
        "site.yaml:15: sensor: unknown key (did you mean 'sensors'?)"]


def test_options_post_init_error_is_located_at_its_key() -> None:
    text = GOOD + ("  - id: b\n    type: button\n    pin: 99\n"
                   "  - id: t\n    type: sht31\n    bus: 1\n    address: 0x200\n")
    out = problems(text)
    assert out == ["site.yaml:21: sensors[1].pin: pin must be a BCM GPIO number 0..27",
                   "site.yaml:25: sensors[2].address: address must be 0x44 (68) or 0x45 (69)"]
    out = problems(GOOD.replace("brokers: [mqtts://it.city.example:8883]", "brokers: []"))
    assert out == ["site.yaml:9: channels.it.brokers: give at least one broker URL"]
    out = problems(GOOD.replace("  it:\n", "  it:\n    tls: {cert_file: /etc/hostname}\n"))
    assert out == ["site.yaml:9: channels.it.tls: tls: cert_file and key_file go together"]


def test_env_unset_is_one_problem_and_unclosed_is_refused() -> None:
    out = problems(GOOD.replace("namwon-01", "${SITE}"))
    assert out == ["site.yaml:1: site: environment variable ${SITE} is not set "
                   "(give it a value or write ${SITE:-default})"]
    out = problems(GOOD.replace("namwon-01", "${UNSET_VAR"))
    assert out == ["site.yaml:1: site: unclosed ${ in '${UNSET_VAR' "
                   "(write ${NAME} or ${NAME:-default})"]
    out = problems(GOOD.replace("namwon-01", "a${X}b${Y"), {"X": "x"})
    assert len(out) == 1 and "unclosed ${" in out[0], out
    out = problems(GOOD.replace("namwon-01", "${1X}"))
    assert len(out) == 1 and "bad variable reference ${1X}" in out[0], out
    out = problems(GOOD.replace("type: load", "type: ${T}"))
    assert len(out) == 1 and "sensors[0].type: environment variable ${T}" in out[0], out
    out = problems(GOOD.split("sensors:")[0] + "sensors: ${S}\n")
    assert len(out) == 1 and "sensors: environment variable ${S}" in out[0], out
    out = problems(GOOD.replace("node: pi-0042", "node: !!binary aGk="))
    assert out == ["site.yaml:2: node: YAML tag tag:yaml.org,2002:binary is not allowed"]
    assert parse(GOOD.replace("namwon-01", "${S:-a}-${N}"), {"N": "b"}).site == "a-b"
