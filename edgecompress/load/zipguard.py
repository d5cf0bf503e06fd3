"""Refuse zip archives (``.keras`` models, ``.npz`` data) whose declared unpacked size is a zip bomb's.

Real models and arrays compress poorly (weights look random), so an archive that claims to unpack to more than
``MAX_RATIO`` times its own size and more than ``MIN_SUSPICIOUS_BYTES`` is refused before anything is inflated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

MAX_RATIO = 100
MIN_SUSPICIOUS_BYTES = 256 << 20


def declared_expansion(path: Path) -> tuple[int, int]:
    """``(declared unpacked bytes, bytes on disk)`` of a zip archive, read from its directory only."""
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    return declared, path.stat().st_size


def is_zip_bomb(path: Path) -> bool:
    """True when the archive declares far more unpacked data than its size can honestly hold."""
    declared, size = declared_expansion(path)
    return declared > MIN_SUSPICIOUS_BYTES and declared > MAX_RATIO * max(size, 1)
