"""MQTT reason codes in words a technician can act on.

paho names a reason code ("Not authorized", "Unspecified error"); alone, "Unspecified error"
says nothing (paho also uses it for a connection that simply dropped). Every reason the
uplink logs or reports goes through :func:`describe`, which adds the code and what it means
for this node. :func:`is_auth` tells a refusal of our identity (a security event) from a
network or broker problem (not one).
"""

from __future__ import annotations

UNSPECIFIED = 0x80
# CONNACK codes that refuse who we are (MQTT 5; paho maps the 3.1.1 codes 4 and 5 to these)
AUTH_CODES = frozenset({0x85, 0x86, 0x87, 0x8A, 0x8C})

_HINTS: dict[int, str] = {
    0x85: "the broker refuses this client id (check channels.<ch>.client_id)",
    0x86: "bad user name or password (check username and password_file)",
    0x87: "not authorized: the broker's ACL or certificate mapping refuses this node",
    0x88: "the broker is unavailable (overloaded or shutting down)",
    0x89: "the broker is busy",
    0x8A: "banned by the broker",
    0x8B: "the broker is shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep-alive timeout: the broker heard nothing from this node in time",
    0x8E: "session taken over: another client connected with the same client id",
    0x90: "topic name invalid (check topic_prefix)",
    0x93: "receive maximum exceeded",
    0x95: "packet too large for the broker",
    0x97: "quota exceeded",
    0x9C: "use another server (the broker redirects)",
    0x9D: "server moved",
}

DISCONNECT_CONTEXT = ("connection closed without a reason from the broker: a network "
                      "drop, a broker restart, or (MQTT 3.1.1) a refusal or another client "
                      "with the same client id")


def describe(code: int, name: str, *, disconnect: bool = False) -> str:
    """``"0x87 Not authorized: <what it means>"``; never a bare "Unspecified error"."""
    head = f"0x{code:02X} {name}"
    if code == UNSPECIFIED:
        if disconnect:
            return f"{DISCONNECT_CONTEXT} ({head})"
        return f"{head}: the broker gave no reason; its log says why"
    hint = _HINTS.get(code)
    return f"{head}: {hint}" if hint else head


def is_auth(code: int) -> bool:
    return code in AUTH_CODES
