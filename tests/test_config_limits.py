"""The config loader is bounded and strict: hostile or broken files give located
ConfigErrors (never another exception, never a runaway process), and values that would
break the agent later (NaN, infinity, 0 where it spins, wildcard topics) are refused."""

from __future__ import annotations

import dataclasses
import enum
import os
import resource
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import Limits, load_config, parse_config, schema
from edge_agent.config.types import Range
from edge_agent.core.errors import ConfigError
from edge_agent.devices.registry import SENSOR_TYPES
from tests.test_config import GOOD

NUMERIC = (int, float)


def parse(text: str, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return parse_config(text, "site.yaml", Path("/etc/edge-agent"), SENSOR_TYPES, {}, limits)


def problems(text: str, limits: Limits | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        parse(text, limits)
    return [p.format() for p in ei.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, s in enumerate(text.splitlines(), 1) if needle in s)


# ---------------------------------------------------------------- structure limits


@pytest.mark.parametrize("text", [
    "site: &a [*a]\n",
    "site: x\nchannels: &c\n  ot: *c\n",
    "sensors:\n  - &s {id: a, type: load, more: [1, *s]}\n",
])
def test_an_alias_that_contains_itself_is_an_error(text: str) -> None:
    out = problems(text)
    assert len(out) == 1 and "an alias refers to a mapping or list that contains it" in out[0]
    assert out[0].startswith("site.yaml:")


@pytest.mark.parametrize("text", [
    "site: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "site: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n",
    "".join(" " * i + f"k{i}:\n" for i in range(1000)) + " " * 1000 + "x: 1\n",
])
def test_deep_nesting_is_an_error_not_a_recursion_error(text: str) -> None:
    out = problems(text)
    assert len(out) == 1 and "nested more than 32 levels deep" in out[0], out


def test_depth_through_aliases_counts_too() -> None:
    deep = "[" * 20 + "1" + "]" * 20
    out = problems(f"a: &d {deep}\nb: {'[' * 20}*d{']' * 20}\n")
    assert len(out) == 1 and ": b[0][0]" in out[0] and "nested more" in out[0]


def _bomb(levels: int, fan: int) -> str:
    lines = [f"a: &0 [{','.join(['x'] * fan)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &{i} [{','.join([f'*{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_an_error_in_process() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        out = problems(_bomb(9, 9))  # 9**9 = 387 million values when expanded
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == 1 and "more than 50000 values" in out[0], out
    assert peak < 64 * 1024**2, f"peak {peak / 1024**2:.0f} MiB while reading a 300-byte file"


@pytest.mark.parametrize("levels,fan", [(9, 9), (7, 10)])
def test_alias_bomb_check_config_is_bounded(tmp_path: Path, levels: int, fan: int) -> None:
    """check-config in its own process, under a CPU-time and address-space cap so that a
    regression is killed rather than eating the machine; its peak RSS is measured."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(levels, fan))
    assert bomb.stat().st_size < 400, bomb.stat().st_size

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    err_file = tmp_path / "stderr"
    with open(err_file, "wb") as err:
        p = subprocess.Popen([sys.executable, "-m", "edge_agent", "check-config", str(bomb)],
                             stdout=subprocess.DEVNULL, stderr=err, preexec_fn=cap)
    # the caps end the child whatever it does; wait4 gives this child's own peak RSS
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err_text = err_file.read_text(errors="replace")
    assert p.returncode == 1, err_text[-2000:]
    assert f"{bomb}:" in err_text and "more than 50000 values" in err_text
    assert usage.ru_maxrss < 512 * 1024, f"peak RSS {usage.ru_maxrss // 1024} MiB"


def test_file_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "site.yaml"
    big.write_text(GOOD + "#" * 2000 + "\n")
    with pytest.raises(ConfigError) as ei:
        load_config(big, SENSOR_TYPES, {}, Limits(max_bytes=1000))
    (p,) = ei.value.problems
    assert (p.file, p.line) == (str(big), 1) and "more than the 1000 a site file may" in p.message
    assert problems(GOOD, Limits(max_bytes=100))[0].startswith("site.yaml:1: <root>: the file")


def test_node_limit_without_aliases() -> None:
    text = "site: [" + ", ".join(["1"] * 200) + "]\n"
    out = problems(text, Limits(max_nodes=100))
    assert len(out) == 1 and "more than 100 values" in out[0]


def test_a_real_site_file_is_far_within_the_limits() -> None:
    sensors = "".join(f"  - {{id: s{i}, type: load, rate: 10}}\n" for i in range(300))
    cfg = parse(GOOD.replace("sensors:\n  - id: gen\n    type: load\n    rate: 10\n",
                             "sensors:\n" + sensors))
    assert len(cfg.sensors) == 300


# ---------------------------------------------------------------- YAML syntax in words


def test_tab_indentation() -> None:
    text = GOOD.replace("  commit_interval: 500ms", "\tcommit_interval: 500ms")
    assert problems(text) == [f"site.yaml:{line_of(text, 'commit_interval')}: <root>: tabs are "
                              "not allowed for indentation; use spaces"]


def test_too_much_indentation_names_the_block() -> None:
    text = GOOD.replace("  max_bytes: 64MiB", "   max_bytes: 64MiB")
    assert problems(text) == [
        f"site.yaml:{line_of(text, 'max_bytes')}: <root>: bad indentation in the block of "
        f"'store' (line {line_of(text, 'store:')}): its keys are indented 2 spaces, this line "
        "3; indent it with 2 spaces"]


def test_too_little_indentation_names_the_block() -> None:
    text = GOOD.replace("    brokers: [mqtts://it", "      brokers: [mqtts://it").replace(
        "    seal: {enabled: false}", "     seal: {enabled: false}")
    out = problems(text)
    assert out == [f"site.yaml:{line_of(text, 'seal:')}: <root>: bad indentation in the block "
                   f"of 'it' (line {line_of(text, '  it:')}): its keys are indented 6 spaces, "
                   "this line 5; indent it with 6 spaces"]


def test_unclosed_quote_points_at_where_it_opened() -> None:
    text = GOOD.replace("node: pi-0042", 'node: "pi-0042')
    assert problems(text) == ['site.yaml:2: <root>: the " opened here is never closed (noticed '
                              f'on line {len(text.splitlines()) + 1}): add the closing " on '
                              "this line"]


def test_binary_file_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_bytes(b"site: a\nnode: b\n\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigError) as ei:
        load_config(f, SENSOR_TYPES, {})
    (p,) = ei.value.problems
    assert p.line == 3 and "not UTF-8 text (is this a binary file?)" in p.message


def test_control_character_names_the_line() -> None:
    out = problems("site: a\nnode: b\x07\n")
    assert out == ["site.yaml:2: <root>: character U+0007 is not allowed in a YAML file (is "
                   "this a binary file?): remove it, a site file is UTF-8 text"]


def test_missing_file_is_not_line_0(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml", SENSOR_TYPES, {})
    (p,) = ei.value.problems
    assert p.line == 1 and "file not found: check the path" in p.message


# ---------------------------------------------------------------- values that break the agent


@pytest.mark.parametrize("old,new,path,msg", [
    ("  commit_interval: 500ms", "  commit_interval: .nan", "store.commit_interval",
     "must be a finite number, got nan"),
    ("  commit_interval: 500ms", "  commit_interval: 0", "store.commit_interval",
     "must be between 10ms and 1m, got 0s"),
    ("  max_bytes: 64MiB", "  max_bytes: 64MiB\n  queue_max: 0", "store.queue_max",
     "must be between 2 and 1e+06, got 0"),
    ("  max_bytes: 64MiB", "  max_bytes: 99999999999999999999999999999MiB", "store.max_bytes",
     "must be between 256KiB and 1PiB"),
    ("  max_bytes: 64MiB", f"  max_bytes: {'9' * 400}MiB", "store.max_bytes",
     "out of range"),
    ("  max_bytes: 64MiB", "  max_bytes: 64MiB\n  batch_max: " + "9" * 5000, "store.batch_max",
     "is too long"),
    ("  ot:\n", "  ot:\n    keepalive: .inf\n", "channels.ot.keepalive",
     "must be a finite number, got inf"),
    ("  ot:\n", "  ot:\n    keepalive: 100000\n", "channels.ot.keepalive",
     "must be between 1s and 65535s"),
    ("  ot:\n", f"  ot:\n    keepalive: {'9' * 400}s\n", "channels.ot.keepalive",
     "finite"),
    ("  ot:\n", "  ot:\n    keepalive: 1.0e+999\n", "channels.ot.keepalive", "finite"),
    ("  ot:\n", "  ot:\n    reconnect_max: -.inf\n", "channels.ot.reconnect_max", "finite"),
    ("  retention: {it: 7d, ot: 30d}", "  retention: {it: .nan, ot: 30d}", "store.retention.it",
     "finite"),
    ("    rate: 10", "    rate: .nan", "sensors[0].rate", "must be a finite number"),
    ("    rate: 10", "    rate: 1.0e+300", "sensors[0].rate", "out of range"),
    ("    rate: 10", "    rate: 10\n    interval: .inf", "sensors[0].interval", "finite"),
    ("  ot:\n", "  ot:\n    topic_prefix: 'edge/#'\n", "channels.ot.topic_prefix",
     "level 2 '#' has a wildcard"),
    ("  ot:\n", "  ot:\n    topic_prefix: edge/+/x\n", "channels.ot.topic_prefix", "wildcard"),
    ("  ot:\n", "  ot:\n    topic_prefix: edge//x\n", "channels.ot.topic_prefix", "empty level"),
    ("  ot:\n", "  ot:\n    topic_prefix: /edge/x\n", "channels.ot.topic_prefix", "empty level"),
    ("  ot:\n", "  ot:\n    topic_prefix: edge/x/\n", "channels.ot.topic_prefix", "empty level"),
    ("  ot:\n", "  ot:\n    topic_prefix: \"edge/\\0x\"\n", "channels.ot.topic_prefix", "NUL"),
    ("  ot:\n", "  ot:\n    topic_prefix: $SYS/x\n", "channels.ot.topic_prefix", "'$'"),
    ("mqtts://ot.city.example:8883,", "'mqtts://ot city.example:8883',",
     "channels.ot.brokers[0]", "is not a host name or IP address"),
    ("mqtts://ot2.city.example]", "mqtts://ot2.city.exa%20mple]", "channels.ot.brokers[1]",
     "not a host name"),
    ("  ot:\n", "  ot:\n    tls: {check_hostname: false}\n", "channels.ot.tls.check_hostname",
     "host names are always checked"),
])
def test_bad_value_is_rejected_at_its_path(old: str, new: str, path: str, msg: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    out = problems(text)
    hits = [p for p in out if f": {path}: " in p]
    assert hits and msg in hits[0], out
    where = line_of(text, new.strip().splitlines()[-1].strip())
    assert hits[0].startswith(f"site.yaml:{where}:"), out


def test_check_hostname_false_is_allowed_only_with_allow_insecure() -> None:
    cfg = parse(GOOD.replace("  ot:\n", "  ot:\n    allow_insecure: true\n"
                                        "    tls: {check_hostname: false}\n"))
    assert cfg.channels[next(iter(cfg.channels))].tls.check_hostname is False


def test_valid_topic_prefix_and_hosts_are_kept() -> None:
    cfg = parse(GOOD.replace("  ot:\n", "  ot:\n    topic_prefix: city/namwon-01/pi 42/ot\n")
                .replace("mqtts://ot2.city.example", "'mqtts://[2001:db8::1]'")
                .replace("ot.city.example", "10.0.0.7"))
    (ch, *_) = cfg.channels
    assert cfg.topic_prefix(ch) == "city/namwon-01/pi 42/ot"
    assert [b.host for b in cfg.channels[ch].brokers] == ["10.0.0.7", "2001:db8::1"]


def _numeric_fields(cls: type) -> list[tuple[str, object]]:
    out = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = typing.get_type_hints(cls, include_extras=True)[f.name]
        out.append((f"{cls.__name__}.{f.name}", tp))
    return out


def _unbounded(tp: object) -> bool:
    """A number type somewhere in ``tp`` that is not inside Annotated[..., Range]."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return not any(isinstance(m, Range) for m in meta) and _unbounded(base)
    if origin is not None:
        return any(_unbounded(a) for a in typing.get_args(tp))
    return isinstance(tp, type) and issubclass(tp, NUMERIC) \
        and not issubclass(tp, bool | enum.Enum)


@pytest.mark.parametrize("cls", [schema.TLSConfig, schema.SealConfig, schema.ChannelConfig,
                                 schema.StoreConfig, schema.LoggingConfig,
                                 schema.MetricsConfig, schema.SensorCommon])
def test_every_number_in_the_schema_has_a_range(cls: type) -> None:
    assert [name for name, tp in _numeric_fields(cls) if _unbounded(tp)] == []


# ---------------------------------------------------------------- fuzz: ConfigError or valid

_FRAGMENTS = ["\n", "  ", "- ", ": ", "&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ", ", "'",
              '"', "#", "\t", "!!str ", "!!python/object ", "<<: ", "---\n", "...\n", "|\n",
              ".nan", ".inf", "-.inf", "1e999", "0x1F", "9" * 30, "${X}", "${", "\\", "%YAML",
              "site", "store", "channels", "ot", "brokers", "mqtts://h:8883", "sensors", "id",
              "type", "load", "commit_interval", "queue_max", "topic_prefix", "keepalive"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60))
def test_fuzz_fragments_give_config_or_config_error(parts: list[str]) -> None:
    try:
        parse("".join(parts))
    except ConfigError as exc:
        assert exc.problems and all(p.line >= 1 for p in exc.problems)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, len(GOOD)), st.integers(0, 20),
       st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=4))
def test_fuzz_mutated_good_file(at: int, cut: int, insert: list[str]) -> None:
    text = GOOD[:at] + "".join(insert) + GOOD[at + cut:]
    try:
        parse(text)
    except ConfigError as exc:
        assert exc.problems and all(p.line >= 1 for p in exc.problems)


_VALUES = st.one_of(st.floats(), st.integers(-(10**30), 10**30), st.text(max_size=12),
                    st.booleans(), st.none(), st.just("1e999s"), st.just("9" * 400))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from([
    ("store", "commit_interval"), ("store", "queue_max"), ("store", "max_bytes"),
    ("store", "segment_bytes"), ("store", "key_period"), ("store", "batch_max"),
    ("ot", "keepalive"), ("ot", "inflight_window"), ("ot", "reconnect_min"),
    ("ot", "health_interval"), ("ot", "failback_after"), ("ot", "topic_prefix"),
    ("gen", "rate"), ("gen", "interval"),
]), _VALUES)
def test_fuzz_any_value_for_a_numeric_key(where: tuple[str, str], value: object) -> None:
    import json

    block, key = where
    anchor = {"store": "  max_bytes: 64MiB\n", "ot": "  ot:\n",
              "gen": "    rate: 10\n"}[block]
    indent = {"store": "  ", "ot": "    ", "gen": "    "}[block]
    shown = {float("inf"): ".inf", float("-inf"): "-.inf"}.get(value) \
        if isinstance(value, float) and value == value else None
    if isinstance(value, float) and value != value:
        shown = ".nan"
    text = GOOD.replace(anchor, anchor + f"{indent}{key}: {shown or json.dumps(value)}\n", 1)
    if key == "rate":
        text = text.replace("    rate: 10\n", "", 1)
    try:
        cfg = parse(text)
    except ConfigError as exc:
        assert exc.problems and all(p.line >= 1 for p in exc.problems)
        return
    for v in (cfg.store.commit_interval, cfg.store.queue_max, cfg.sensors[0].interval,
              *(float(c.keepalive) for c in cfg.channels.values())):
        assert v == v and abs(float(v)) < 1e15  # nothing non-finite gets through

