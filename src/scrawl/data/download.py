"""Getting a dataset's files into the data folder: `ensure_files` finds them, downloads what is missing
and checks what is there against the catalogue's pinned sizes and checksums.

MNIST comes file by file from its mirrors (`download_file`); EMNIST from NIST's single ``gzip.zip``
archive (or a ``gzip.zip`` already in ``<data_dir>/emnist/``), extracting only the members needed.
Every file is written through `scrawl.fsutil.open_temp`: a temp file beside it, hashed while written,
verified, fsynced and only then renamed into place, so a data folder never holds a half-written file.
A failed try removes its temp file, and a data folder that a failed fetch created is removed again.
Mirrors: the catalogue's, or ``SCRAWL_MIRRORS`` (comma-separated base URLs), or the `mirrors` argument.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import DataError, DownloadError
from ..fsutil import fsync_folder, open_temp, temp_path
from .catalogue import DatasetInfo, check_split, dataset_info
from .checksums import remember_digest, verify_or_raise
from .folder import locate, removing_new_folders, resolve_with_source

log = logging.getLogger(__name__)


class _MirrorFailure(Exception):
    """One mirror failed; the next one may work."""


def mirror_bases(info: DatasetInfo, mirrors: Sequence[str] | None) -> list[str]:
    """Base URLs to try: `mirrors` if given, else $SCRAWL_MIRRORS, else the catalogue's."""
    if mirrors:
        bases = [m for m in mirrors if m and m.strip()]
    else:
        env = os.environ.get("SCRAWL_MIRRORS", "")
        bases = [m for m in (s.strip() for s in env.split(",")) if m] or list(info.mirrors)
    return [b.strip() for b in bases]


def join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


# --------------------------------------------------------------------------------------------------
# Writing one verified file
# --------------------------------------------------------------------------------------------------


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                leave=False)


def _copy_verified(src, out: IO[bytes], dest: Path, *, sha256: str | None, md5: str | None, size: int | None,
                   announced: int | None, read_error: tuple[type[BaseException], ...], bar,
                   broke_off: str = "transfer broke off") -> str:
    """Stream `src` into the open file `out` (the temp file of `dest`), hashing as it goes; raise
    _MirrorFailure on a bad transfer. Returns the SHA-256 of what was written."""
    h_sha = hashlib.sha256()
    h_md5 = hashlib.md5() if md5 and not sha256 else None
    written = 0
    while True:
        try:
            chunk = src.read(1 << 16)
        except read_error as exc:
            reason = str(exc) or type(exc).__name__
            raise _MirrorFailure(f"{broke_off} after {written} bytes ({reason})") from None
        if not chunk:
            break
        try:
            out.write(chunk)
        except OSError as exc:
            raise DataError(f"cannot write {dest}: {exc.strerror or exc} (is the disk full?)") from None
        h_sha.update(chunk)
        if h_md5 is not None:
            h_md5.update(chunk)
        written += len(chunk)
        bar.update(len(chunk))
    if announced is not None and written < announced:
        raise _MirrorFailure(f"incomplete transfer: got {written} of {announced} bytes (Content-Length)")
    if size is not None and written != size:
        raise _MirrorFailure(f"wrong size: got {written} bytes, expected {size}")
    digest = h_sha.hexdigest()
    if sha256 and digest != sha256.lower():
        raise _MirrorFailure(f"checksum mismatch: expected SHA-256 {sha256}, got {digest}")
    if h_md5 is not None and h_md5.hexdigest() != md5.lower():
        raise _MirrorFailure(f"checksum mismatch: expected MD5 {md5}, got {h_md5.hexdigest()}")
    return digest


def _save_verified(dest: Path, copy: Callable[[IO[bytes]], str]) -> None:
    """Write `dest` atomically: `copy(file)` fills a temp file beside it (and returns its SHA-256),
    which is fsynced and renamed into place only if `copy` succeeds. On any failure the temp file goes.
    (No sweep of older temp files: one may belong to another process downloading the same file.)"""
    try:
        with open_temp(dest) as (out, tmp):
            digest = copy(out)
        try:
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DataError(f"cannot write {dest}: {exc.strerror or exc}. Choose a writable data folder "
                        "with --data-dir or SCRAWL_DATA.") from None
    fsync_folder(dest.parent)
    remember_digest(dest, "sha256", digest)


# --------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------


def _download_one(url: str, dest: Path, sha256: str | None, md5: str | None, size: int | None,
                  progress: bool, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "scrawl (python urllib)"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _MirrorFailure(f"HTTP error {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _MirrorFailure(f"cannot connect: {exc.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _MirrorFailure(f"cannot connect: {exc or type(exc).__name__}") from None
    with response:
        length = response.headers.get("Content-Length", "")
        announced = int(length) if length.strip().isdigit() else None
        if size is not None and announced is not None and announced != size:
            raise _MirrorFailure(f"server announces {announced} bytes, expected {size}: not the official file")
        with _progress_bar(announced, dest.name, progress) as bar:
            _save_verified(dest, lambda out: _copy_verified(
                response, out, dest, sha256=sha256, md5=md5, size=size, announced=announced,
                read_error=(OSError, http.client.HTTPException), bar=bar,
            ))


def download_file(urls: Sequence[str] | str, dest: str | os.PathLike, sha256: str | None, *,
                  progress: bool = False, timeout: float = 30, size: int | None = None,
                  md5: str | None = None) -> Path:
    """Download `dest` from the first of `urls` that delivers a complete, verified copy.

    Each try streams into a temporary file beside `dest` (`scrawl.fsutil.open_temp`), hashing as it
    goes; the file must be as long as the server's Content-Length (and `size`, if given) and match
    `sha256` (or `md5` when no SHA-256 is given). Only then is it fsynced and renamed to `dest`. A failed
    try removes its temporary file and moves on to the next URL; if all fail, DownloadError lists each
    URL and why it failed, and a folder created for `dest` is removed again. `dest` is never left
    half-written.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DownloadError(f"no URL to download {dest.name} from: give a mirror (SCRAWL_MIRRORS)")
    with removing_new_folders(dest.parent):
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"cannot create the folder {dest.parent}: {exc.strerror or exc}. Choose a writable data folder "
                "with --data-dir or SCRAWL_DATA."
            ) from None
        failures: list[str] = []
        for url in urls:
            log.info("downloading %s from %s", dest.name, url)
            try:
                _download_one(url, dest, sha256, md5, size, progress, timeout)
            except _MirrorFailure as exc:
                log.info("download of %s from %s failed: %s", dest.name, url, exc)
                failures.append(f"  - {url}: {exc}")
                continue
            log.info("saved %s", dest)
            return dest
        raise DownloadError(f"could not download {dest.name} into {dest.parent}; tried:\n" + "\n".join(failures))


# --------------------------------------------------------------------------------------------------
# Finding and fetching a split's files
# --------------------------------------------------------------------------------------------------


def missing_message(info: DatasetInfo, split: str, missing: Sequence[str], folder: Path, how: str,
                    bases: Sequence[str], reason: str) -> str:
    lines = [f"{info.name} ({split}) is not available: {reason}. Missing:"]
    lines += [f"  {folder / f}" for f in missing]
    lines.append(f"Looked in {folder} (data folder {folder.parent}, {how}).")
    lines.append("To fix, do one of:")
    if info.archive:
        urls = [join_url(b, info.archive) for b in bases]
        lines.append(f"  - download NIST's {info.archive} ({' or '.join(urls)}) and put it in {folder}/ "
                     "(Scrawl extracts what it needs), or put the listed files there;")
    else:
        lines.append("  - download the listed files into " + f"{folder}/ from " + " or ".join(bases) + ";")
    lines.append(f"  - point --data-dir or SCRAWL_DATA at a folder that holds {info.subdir}/ with these files;")
    lines.append("  - allow downloading (and a network connection), or set SCRAWL_MIRRORS to mirrors you can reach.")
    return "\n".join(lines)


def _extract_from_archive(info: DatasetInfo, archive: Path, wanted: Sequence[str], folder: Path,
                          progress: bool) -> dict[str, str]:
    """Extract the `wanted` members of `archive` into `folder`, each verified and renamed into place.
    Returns {file name: problem} for those that failed."""
    failures: dict[str, str] = {}
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        return {f: f"{archive} is not a readable zip archive ({exc})" for f in wanted}
    with zf:
        members: dict[str, str] = {}
        for member in zf.namelist():
            base = PurePosixPath(member).name
            if base not in members or member == info.archive_dir + base:
                members[base] = member
        for fname in wanted:
            member = members.get(fname)
            if member is None:
                failures[fname] = f"not in {archive.name}"
                continue
            dest = folder / fname
            try:
                with zf.open(member) as src, _progress_bar(zf.getinfo(member).file_size, fname, progress) as bar:
                    _save_verified(dest, lambda out: _copy_verified(
                        src, out, dest, sha256=info.sha256.get(fname), md5=info.md5.get(fname),
                        size=info.sizes.get(fname), announced=None,
                        read_error=(zipfile.BadZipFile, zlib.error, EOFError, OSError), bar=bar,
                        broke_off="damaged archive member: reading failed",
                    ))
                log.info("extracted %s from %s", fname, archive.name)
            except _MirrorFailure as exc:
                failures[fname] = f"{member} in {archive.name}: {exc}"
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                failures[fname] = f"{member} in {archive.name} is damaged ({exc})"
    return failures


def _raise_extract_failures(info, split, missing, failures, folder, how, bases, *, hint, download=False):
    for fname, problem in failures.items():
        if fname not in missing:
            log.warning("could not extract %s (not needed now): %s", fname, problem)
    needed = {f: p for f, p in failures.items() if f in missing}
    if needed:
        details = "\n".join(f"  - {f}: {p}" for f, p in needed.items())
        cls = DownloadError if download else DataError
        raise cls(f"could not get {', '.join(needed)} from the archive:\n{details}\n{hint}\n\n"
                  + missing_message(info, split, list(needed), folder, how, bases, "extraction failed"))


def _fetch(info: DatasetInfo, split: str, missing: list[str], folder: Path, how: str,
           bases: list[str], progress: bool) -> None:
    """Download (or extract) the `missing` files of `split` into `folder`; DataError if that fails."""
    if not info.archive:
        for fname in missing:
            try:
                download_file([join_url(b, fname) for b in bases], folder / fname, info.sha256.get(fname),
                              progress=progress, size=info.sizes.get(fname), md5=info.md5.get(fname))
            except DownloadError as exc:
                raise DownloadError(
                    f"{exc}\n\n" + missing_message(info, split, missing, folder, how, bases, "the download failed")
                ) from None
        return

    # EMNIST: everything comes out of one big zip. While we have it, extract every missing file of
    # this dataset (both splits and the mapping), not only the split asked for.
    extra = [f for f in info.all_files() if f not in missing and locate(folder, f) is None]
    local = folder / info.archive
    if local.is_file():
        log.info("extracting %s from %s", ", ".join(missing), local)
        failures = _extract_from_archive(info, local, missing + extra, folder, progress)
        _raise_extract_failures(info, split, missing, failures, folder, how, bases,
                                hint=f"{local} is damaged or incomplete: delete it or replace it with NIST's "
                                     f"{info.archive}.")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the folder {folder}: {exc.strerror or exc}. Choose a writable data "
                        "folder with --data-dir or SCRAWL_DATA.") from None
    tmp_zip = temp_path(folder / info.archive)
    try:
        try:
            download_file([join_url(b, info.archive) for b in bases], tmp_zip, None, progress=progress,
                          timeout=60)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}\n\n" + missing_message(info, split, missing, folder, how, bases, "the download failed")
            ) from None
        failures = _extract_from_archive(info, tmp_zip, missing + extra, folder, progress)
        _raise_extract_failures(info, split, missing, failures, folder, how, bases,
                                hint="The downloaded archive was damaged or not the official one; try again later "
                                     "or another mirror (SCRAWL_MIRRORS).", download=True)
    finally:
        tmp_zip.unlink(missing_ok=True)


def ensure_files(name: str, split: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 mirrors: list[str] | None = None, progress: bool = False) -> dict[str, Path]:
    """Paths of a split's files: {"images": ..., "labels": ...} plus "mapping" for EMNIST.

    Missing files are downloaded if `download` (MNIST from its mirrors, EMNIST out of NIST's gzip.zip or
    a gzip.zip already in the folder). Every present .gz file is checked against its pinned size and
    SHA-256. Raw (un-gzipped) files are used as they are.

    The EMNIST mapping file is optional: if it is missing (and nothing else is), "mapping" is left out
    and the loader uses the official class list built into `DATASETS`.

    A re-split dataset's files are those of its source split; LEAF's FEMNIST sample is {"arrays": ...}
    and cannot be downloaded.
    """
    info = dataset_info(name)
    check_split(info, split)
    if info.resplit is not None:
        return ensure_files(info.resplit.source, info.resplit.split, data_dir, download=download,
                            mirrors=mirrors, progress=progress)
    root, how = resolve_with_source(data_dir)
    folder = root / info.subdir
    if info.reader in ("leaf-npz", "unipen-npz", "unipen-chars-npz", "femnist-npz"):
        return _ensure_local(info, split, root, how)
    bases = mirror_bases(info, mirrors)

    wanted = dict(info.files[split])
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, fname in wanted.items():
        path = locate(folder, fname)
        if path is None:
            missing.append(fname)
        else:
            found[role] = path
    if missing:
        if info.mapping and locate(folder, info.mapping) is None:
            missing.append(info.mapping)
        local_archive = info.archive and (folder / info.archive).is_file()
        if not download and not local_archive:
            raise DataError(missing_message(info, split, missing, folder, how, bases, "downloading is turned off"))
        with removing_new_folders(folder):
            _fetch(info, split, missing, folder, how, bases, progress)
        for role, fname in wanted.items():
            found.setdefault(role, folder / fname)
    if info.mapping:
        mapping = locate(folder, info.mapping)
        if mapping is not None:
            found["mapping"] = mapping
        else:
            log.info("%s not found in %s: using the built-in class list", info.mapping, folder)
    for role in ("images", "labels"):
        verify_or_raise(info, found[role])
    return found


def _ensure_local(info: DatasetInfo, split: str, root: Path, how: str) -> dict[str, Path]:
    """The files of a dataset Scrawl cannot download (LEAF's FEMNIST sample, the UNIPEN words as strokes):
    there, or DataError."""
    found = {}
    for role, fname in info.files[split].items():
        path = root / info.subdir / fname
        if not path.is_file():
            raise DataError(f"{info.name}: {path} is missing (looked in {root}, chosen by {how}); it is "
                            f"{info.description}")
        found[role] = path
    return found
