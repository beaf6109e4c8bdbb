"""The escalation phone numbers: a secret file like a key (owner-only), never in the YAML."""

from __future__ import annotations

from pathlib import Path

from edge_agent.core.errors import KeyFileError
from edge_agent.protocols.at_modem import SmsTextError, check_number
from edge_agent.security.keys import check_private

MAX_NUMBERS = 8
NUMBERS_HINT = "create it (one number a line, mode 0600) or remove escalate.numbers_file"


def load_numbers(path: Path) -> tuple[str, ...]:
    """One number a line (spaces and dashes ignored), ``#`` comments; mode 0600 required."""
    check_private(path, NUMBERS_HINT)
    numbers: list[str] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip().replace(" ", "").replace("-", "")
        if not text:
            continue
        try:
            numbers.append(check_number(text))
        except SmsTextError as exc:
            raise KeyFileError(f"{path}:{i}: {exc}") from None
    if not numbers:
        raise KeyFileError(f"{path}: no phone number in it")
    if len(numbers) > MAX_NUMBERS:
        raise KeyFileError(f"{path}: at most {MAX_NUMBERS} numbers")
    return tuple(dict.fromkeys(numbers))
