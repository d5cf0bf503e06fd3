"""``--device`` addresses: this machine, ``ssh://user@host[:port]`` or ``adb://SERIAL``; the one place that parses them.

``parse_device_uri`` says which kind of device a value names; ``parse_ssh_uri`` / ``parse_adb_uri`` parse the
address itself (the runners call them) and reject anything ssh or adb could read as an option.

Example:
    >>> parse_device_uri("ssh://pi@raspberrypi.local").kind
    'ssh'
    >>> parse_device_uri(None).kind
    'host'
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote, urlsplit

from edgecompress.errors import RemoteError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SAFE_HOST = re.compile(r"^([0-9A-Fa-f:.]+|[A-Za-z0-9_][A-Za-z0-9._-]*)$")
_SERIAL = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclasses.dataclass(frozen=True)
class DeviceUri:
    """Which kind of device a ``--device`` value names.

    Args:
        kind: ``"host"`` (no value, ``""`` or ``"host"``), ``"ssh"``, ``"adb"``, or ``"unknown"`` (each verb
            words its own refusal).
        uri: the value as given (``""`` for none).
    """

    kind: str
    uri: str


def parse_device_uri(device: str | None) -> DeviceUri:
    """Classify a ``--device`` value by its scheme (the address is parsed by ``parse_ssh_uri``/``parse_adb_uri``).

    Args:
        device: the ``--device`` value, or None.

    Returns:
        The ``DeviceUri``.

    Example:
        >>> parse_device_uri("adb://emulator-5554").kind
        'adb'
    """
    if device in (None, "", "host"):
        return DeviceUri("host", device or "")
    for kind in ("ssh", "adb"):
        if device.startswith(f"{kind}://"):
            return DeviceUri(kind, device)
    return DeviceUri("unknown", device)


@dataclasses.dataclass(frozen=True)
class SshAddress:
    """A parsed ``ssh://user@host[:port]`` address."""

    user: str | None
    host: str
    port: int

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 22 else f":{self.port}"
        return f"ssh://{user}{host}{port}"


def parse_ssh_uri(uri: str) -> SshAddress:
    """Parse ``ssh://user@host[:port]``; reject anything ssh could read as an option or a second word.

    Args:
        uri: the ``--device`` value.

    Returns:
        The ``SshAddress``.

    Example:
        >>> parse_ssh_uri("ssh://pi@raspberrypi.local:2222").port
        2222
    """
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: ssh://[bad
        raise RemoteError(f"expected a device address ssh://user@host[:port]. Received: {uri!r} ({exc}). "
                          "Write e.g. --device ssh://pi@raspberrypi.local or ssh://pi@[fe80::1].") from exc
    if parts.scheme != "ssh" or not hostname or parts.path not in ("", "/") or parts.query:
        raise RemoteError(f"expected a device address ssh://user@host[:port]. Received: {uri!r}. "
                          "Write e.g. --device ssh://pi@raspberrypi.local.")
    user = unquote(parts.username) if parts.username else None
    host = hostname
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise RemoteError(f"expected a port between 1 and 65535 in {uri!r}. Received: an invalid port. "
                          "Write e.g. ssh://pi@host:2222.") from exc
    if user is not None and not _SAFE_NAME.match(user):
        raise RemoteError(f"expected a user name of letters, digits, '.', '_' or '-'. Received: {user!r}. "
                          "Fix the user part of --device.")
    if not _SAFE_HOST.match(host):
        raise RemoteError(f"expected a host name or IP address. Received: {host!r}. Fix the host part of --device.")
    return SshAddress(user=user, host=host, port=port)


def parse_adb_uri(uri: str) -> str:
    """``adb://SERIAL`` -> ``SERIAL`` (letters, digits, ``.``, ``_``, ``:``, ``-``; e.g. ``192.168.1.5:5555``).

    Example:
        >>> parse_adb_uri("adb://emulator-5554")
        'emulator-5554'
    """
    parts = urlsplit(uri)
    serial = uri[len("adb://"):] if uri.startswith("adb://") else ""
    if parts.scheme != "adb" or not serial or not _SERIAL.match(serial) or serial.startswith("-"):
        raise RemoteError(f"expected a device address adb://SERIAL (from `adb devices`). Received: {uri!r}. "
                          "Write e.g. --device adb://emulator-5554.")
    return serial
