"""Checking dataset files against the sizes and checksums pinned in the catalogue.

Hashing a big file takes seconds, so digests are remembered per (path, size, mtime): `scrawl data
verify` and a load in the same process hash each file once, and a file just downloaded (hashed while it
was written) is not hashed again.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..fsutil import file_digest
from .catalogue import DatasetInfo

_digest_cache: dict[tuple[str, int, int, str], str] = {}


def _key(path: Path, algo: str) -> tuple[str, int, int, str]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, algo


def cached_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, from the cache while the file is unchanged."""
    key = _key(path, algo)
    if key not in _digest_cache:
        _digest_cache[key] = file_digest(path, algo)
    return _digest_cache[key]


def remember_digest(path: Path, algo: str, digest: str) -> None:
    """Record the digest of a file just written (and hashed on the way)."""
    _digest_cache[_key(path, algo)] = digest


def check_file(info: DatasetInfo, path: Path) -> tuple[bool | None, str]:
    """(True, how) if verified, (False, problem) if it fails its pinned size/checksum,
    (None, why) if it cannot be verified (raw file, no pinned sum)."""
    fname = path.name
    if path.suffix != ".gz" and fname + ".gz" in info.all_files():
        return None, "uncompressed file: no checksum to check (its structure is checked when loaded)"
    sha, size, md5 = info.sha256.get(fname), info.sizes.get(fname), info.md5.get(fname)
    try:
        actual_size = path.stat().st_size
        if size is not None and actual_size != size:
            shorter = "truncated? " if actual_size < size else ""
            return False, f"size mismatch: {actual_size} bytes, expected {size} ({shorter}not the official file)"
        if sha:
            got = cached_digest(path, "sha256")
            if got != sha.lower():
                return False, f"SHA-256 mismatch: expected {sha}, got {got}"
            return True, "SHA-256 matches"
        if md5:
            got = cached_digest(path, "md5")
            if got != md5.lower():
                return False, f"MD5 mismatch: expected {md5}, got {got}"
            return True, "MD5 matches (no SHA-256 is known for this file)"
    except OSError as exc:
        return False, f"cannot read: {exc.strerror or exc}"
    return None, "no pinned checksum for this file (its structure is checked when loaded)"


def verify_or_raise(info: DatasetInfo, path: Path) -> None:
    """DataError if the file fails its pinned size or checksum (nothing pinned: it passes)."""
    ok, detail = check_file(info, path)
    if ok is False:
        raise DataError(
            f"{path}: {detail}. The file is damaged or not the official one: delete it and run again to "
            "download a fresh copy (or replace it with the official file)."
        )
