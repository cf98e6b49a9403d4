"""Where the bytes come from: local paths through the builtin ``open``, URLs through fsspec.

A PATH is a local path or an fsspec URL (``s3://bucket/runs/``, ``gs://``, ``memory://``...);
``file://`` URLs are local paths (:func:`local_path`). ``mlflow://`` is not a storage URL: it names a
tracking server (:mod:`warmcheck.readers._mlflowrest`).

* :func:`open_binary` opens a file for reading: the builtin ``open`` for a local path (nothing in
  between), ``fs.open`` with large blocks for a URL (a TFRecord is read in sequential ranges of
  :data:`BLOCK_SIZE`, never whole in memory);
* :func:`stat` is a file's size and version (local: mtime, ctime, inode, device; remote: ETag,
  generation or modification time, whichever the filesystem gives); :func:`known_stat` is what the
  discovery listing recorded, without a request;
* :func:`find` lists everything under a URL prefix with one ``fs.find(..., detail=True)``.

A remote file that is missing or forbidden raises ``FileNotFoundError``/``PermissionError`` like a
local one (the reader makes a finding of it); an endpoint that does not answer, after the bounded
retries of :data:`S3_DEFAULTS`, raises :class:`StorageError` (a whole-invocation failure: exit 2).
fsspec is imported only when a URL is met.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from .errors import PathError, WarmcheckError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

BLOCK_SIZE = 8 * 1024 * 1024  # bytes per remote range request when reading a file sequentially

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*://")
_NOT_STORAGE = ("mlflow://",)  # schemes handled elsewhere

# Bounded retries for S3 so that an endpoint that stops answering ends in an error within tens of
# seconds: botocore's own timeouts and attempts, and s3fs's retry loop around them (``retries``: set on
# the filesystem, s3fs takes no such argument). Worst case about retries * max_attempts * (connect or
# read timeout) = 40 s. Each can be overridden with --storage-option (``config_kwargs.read_timeout=60``,
# ``retries=5``).
S3_DEFAULTS: dict[str, Any] = {
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 10,
                      "retries": {"total_max_attempts": 2, "mode": "standard"}},
    "retries": 2,
}
_DEFAULTS: dict[str, dict[str, Any]] = {"s3": S3_DEFAULTS, "s3a": S3_DEFAULTS}

# The extra that installs a protocol's filesystem (pip install 'warmcheck[EXTRA]').
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


class StorageError(WarmcheckError):
    """Object storage could not be reached or answered with an error for the whole invocation (exit 2)."""


@dataclass(frozen=True, slots=True)
class FileStat:
    """A file's size and a version string that changes whenever its content may have changed."""

    size: int
    version: str


_options: dict[str, Any] = {}
_known: dict[str, FileStat] = {}
_details: dict[str, dict[str, Any]] = {}  # S3 listing entries (ETag): opening the object needs no HEAD
_listed: set[str] = set()  # URL prefixes listed whole: a file under one that is not in _known is not there
_lock = threading.Lock()


# -- paths and URLs -------------------------------------------------------------------------------

def is_url(path: str) -> bool:
    """Whether ``path`` is a storage URL read through fsspec (not ``file://``, not ``mlflow://``)."""
    if "://" not in path or not _URL.match(path):
        return False
    lower = path.lower()
    return not lower.startswith(_NOT_STORAGE) and not lower.startswith("file://")


def local_path(path: str) -> str:
    """``file:///x/y`` -> ``/x/y``; any other path unchanged."""
    if path[:7].lower() == "file://":
        rest = path[7:]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost"):]
        from urllib.parse import unquote
        return unquote(rest) or "/"
    return path


def protocol(url: str) -> str:
    """The (first) protocol of a URL, lower case: ``s3`` for ``s3://b/k``, ``simplecache`` for chains."""
    return url.split("://", 1)[0].split("::", 1)[0].lower()


def join(base: str, name: str) -> str:
    """``base/name`` for a URL or a local path."""
    if is_url(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def dirname(path: str) -> str:
    """The directory part of a URL (keeping ``proto://bucket``) or of a local path."""
    if is_url(path):
        head, sep, rest = path.partition("://")
        return head + sep + rest.rstrip("/").rsplit("/", 1)[0] if "/" in rest.rstrip("/") else path
    return os.path.dirname(path)


# -- storage options ------------------------------------------------------------------------------

def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value); the value as JSON when it parses (int, float, bool, null, object, list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    """A storage option's value: JSON when it parses (``True``/``False`` too), else the string."""
    if raw in ("True", "False"):
        return raw == "True"
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def options_from(pairs: Mapping[str, Any] | list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Storage options from ``KEY=VALUE`` texts or a mapping; dotted keys nest (``client_kwargs.endpoint_url``)."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else [parse_option(p) for p in pairs]
    out: dict[str, Any] = {}
    for key, value in items:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def set_storage_options(options: Mapping[str, Any]) -> None:
    """Options for every URL filesystem (merged over the defaults; nested dicts merge key by key)."""
    global _options
    _options = dict(options)


def storage_options() -> dict[str, Any]:
    """The options set with :func:`set_storage_options` (to pass to worker processes)."""
    return dict(_options)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def merged_options(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, nested dicts merged key by key."""
    return _merged(base, over)


def options_for(url: str) -> dict[str, Any]:
    """The keyword arguments for ``url``'s filesystem: defaults for its protocol, then the user's."""
    return copy.deepcopy(_merged(_DEFAULTS.get(protocol(url), {}), _options))  # botocore edits its dicts


# -- filesystems ----------------------------------------------------------------------------------

def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path inside it) for a URL. Raises :class:`PathError` when it is not installed."""
    _check_installed(url)
    import fsspec.core
    options = options_for(url)
    retries = options.pop("retries", None) if protocol(url) in ("s3", "s3a") else None
    try:
        fs, inner = fsspec.core.url_to_fs(url, **options)
        if retries is not None:
            fs.retries = int(retries)
        if protocol(url) in ("s3", "s3a") and "local_expiry_check" not in options \
                and hasattr(fs, "local_expiry_check"):
            # Each range response's ETag is compared with the listing's: an object replaced after the
            # listing is reported (WC001), never read as the first bytes of one and the rest of another.
            fs.local_expiry_check = True
        return cast("AbstractFileSystem", fs), cast(str, inner)
    except ImportError as exc:
        raise PathError(_missing_message(url, str(exc))) from None
    except (TypeError, ValueError) as exc:
        raise PathError(f"{url}: cannot open this URL's filesystem with the storage options given: {exc}") \
            from None


def _check_installed(url: str) -> None:
    try:
        from fsspec.registry import get_filesystem_class, known_implementations
    except ImportError:
        raise PathError(f"{url}: reading URLs needs fsspec; pip install 'warmcheck[{_extra(url)}]'") from None
    for proto in url.split("://", 1)[0].lower().split("::"):
        try:
            get_filesystem_class(proto)
        except ValueError:
            raise PathError(f"{url}: unknown URL scheme {proto}:// (no fsspec filesystem is registered "
                            "for it)") from None
        except ImportError as exc:
            hint = known_implementations.get(proto, {}).get("err") or str(exc)
            raise PathError(_missing_message(url, hint, proto)) from None


def _extra(url: str, proto: str | None = None) -> str:
    return _EXTRAS.get(proto or protocol(url), "s3")


def _missing_message(url: str, hint: str, proto: str | None = None) -> str:
    proto = proto or protocol(url)
    extra = _EXTRAS.get(proto)
    install = f"pip install 'warmcheck[{extra}]'" if extra else hint.rstrip(".")
    return f"{url}: the {proto}:// filesystem is not installed; {install}"


# -- listing --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Entry:
    """A file found under a URL prefix: its URL, its path relative to the prefix ('/' separators), its stat."""

    url: str
    relative: str
    stat: FileStat


def find(url: str) -> tuple[str, list[Entry]]:
    """('file' or 'dir', the files under ``url``) with one listing call; the stats are recorded for
    :func:`known_stat`. Raises :class:`PathError` when nothing is there, :class:`StorageError` when the
    endpoint fails."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    try:
        listing = cast("dict[str, dict[str, Any]]", fs.find(root, detail=True, withdirs=False))
    except FileNotFoundError:
        listing = {}
    except PermissionError as exc:
        raise PathError(f"{url}: permission denied: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - every client's own exception types
        raise _unavailable(url, exc) from None
    prefix = url.rstrip("/")
    if set(listing) == {root} or (not listing and _is_file(fs, root, url)):
        info = listing.get(root) or _info(fs, root, url)
        st = _stat_of(info)
        _remember(url, st)
        return "file", [Entry(url, url.rstrip("/").rsplit("/", 1)[-1], st)]
    if not listing:
        raise PathError(f"{url}: no such file or directory (nothing listed under this prefix)")
    out = []
    strip = len(root) + 1
    for name in sorted(listing):
        info = listing[name]
        if info.get("type", "file") != "file" or not name.startswith(root + "/"):
            continue
        rel = name[strip:]
        st = _stat_of(info)
        entry_url = prefix + "/" + rel
        _remember(entry_url, st, info)
        out.append(Entry(entry_url, rel, st))
    with _lock:
        _listed.add(prefix + "/")
    return "dir", out


def _is_file(fs: AbstractFileSystem, root: str, url: str) -> bool:
    try:
        return bool(fs.isfile(root))
    except FileNotFoundError:
        return False
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(url, exc) from None


def _remember(url: str, st: FileStat, info: Mapping[str, Any] | None = None) -> None:
    with _lock:
        _known[url] = st
        if info is not None and "ETag" in info:
            _details[url] = {k: info[k] for k in ("name", "size", "type", "ETag", "LastModified") if k in info}


def forget_listings() -> None:
    """Drop the stats recorded by :func:`find` (tests; a long-lived process re-listing)."""
    with _lock:
        _known.clear()
        _listed.clear()
        _details.clear()


# -- stat -----------------------------------------------------------------------------------------

def known_stat(path: str) -> FileStat | None:
    """The stat the discovery listing recorded for ``path`` (no request); ``None`` if not listed."""
    return _known.get(path)


def stat(path: str) -> FileStat:
    """``path``'s size and version, asked now. Raises ``OSError`` (``FileNotFoundError``...) like ``os.stat``."""
    if not is_url(path):
        return local_stat(os.stat(local_path(path)))
    fs, inner = filesystem(path)
    try:
        fs.invalidate_cache(inner)
    except Exception:  # noqa: BLE001, S110 - a filesystem without a listing cache
        pass
    return _stat_of(_info(fs, inner, path))


def exists(path: str) -> bool:
    """Whether a regular file is at ``path``: for a URL under a listed prefix, from the listing (no
    request); else asked (``os.path.isfile``, a HEAD request)."""
    if not is_url(path):
        return os.path.isfile(local_path(path))
    if path in _known:
        return True
    if any(path.startswith(prefix) for prefix in _listed):
        return False
    try:
        fs, inner = filesystem(path)
        return bool(fs.isfile(inner))
    except (FileNotFoundError, PermissionError):
        return False
    except PathError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(path, exc) from None


def stamp(path: str, fh: BinaryIO | None = None) -> tuple[int, int, int]:
    """``(size, version number, 0)`` of a URL (the shape of a local file's ``(size, mtime_ns, inode)``):
    from the listing, else from the open file's details, else asked."""
    st = known_stat(path)
    if st is None and isinstance(fh, _RemoteFile):
        st = fh.stat()
    if st is None:
        st = stat(path)
    return (st.size, zlib.crc32(st.version.encode()), 0)


def local_stat(st: os.stat_result) -> FileStat:
    """A local file's :class:`FileStat`: changes with its mtime, ctime, inode or device."""
    return FileStat(st.st_size, f"{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}")


_VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash", "content_md5", "mtime", "LastModified",
                 "last_modified", "updated", "created")


def _stat_of(info: Mapping[str, Any]) -> FileStat:
    size = info.get("size")
    if size is None:
        size = info.get("Size", 0)
    for key in _VERSION_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            if hasattr(value, "timestamp"):  # a datetime: the same text as the float a listing gives
                value = value.timestamp()
            return FileStat(int(size or 0), f"{key}={value}")
    return FileStat(int(size or 0), "")


def _info(fs: AbstractFileSystem, inner: str, url: str) -> dict[str, Any]:
    try:
        return cast("dict[str, Any]", fs.info(inner))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(url, exc) from None


def _gone(url: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such object (deleted or replaced since it was listed?)", url)


def _unavailable(url: str, exc: BaseException) -> StorageError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TypeError):  # the client was made lazily, at the first request
        return StorageError(f"{url}: the filesystem does not take the storage options given ({text})")
    return StorageError(f"{url}: object storage did not answer ({type(exc).__name__}: {text}); "
                        "timeouts and retries can be set with --storage-option (for S3: "
                        "config_kwargs.connect_timeout, config_kwargs.read_timeout, retries)")


# -- reading --------------------------------------------------------------------------------------

def open_binary(path: str) -> BinaryIO:
    """``path`` opened for reading bytes: seekable, remote files read in :data:`BLOCK_SIZE` ranges."""
    if not is_url(path):
        return open(local_path(path), "rb")  # noqa: SIM115 - the caller closes it
    fs, inner = filesystem(path)
    kwargs: dict[str, Any] = {"block_size": BLOCK_SIZE, "cache_type": "readahead"}
    known = known_stat(path)
    if known is not None and protocol(path) in ("s3", "s3a"):
        kwargs["size"] = known.size  # no HEAD request: the listing gave the size
    try:
        raw = fs.open(inner, "rb", **kwargs)
        details = _details.get(path)
        if details is not None and getattr(raw, "_details", 0) is None:
            # s3fs asks for the object's details (a HEAD) before its first range; the listing has them, and
            # its ETag makes every range request conditional: an object replaced since is noticed.
            raw._details = dict(details)
    except FileNotFoundError:
        raise _gone(path) from None
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(path, exc) from None
    return cast(BinaryIO, _RemoteFile(raw, path))


def size_of(fh: BinaryIO) -> int:
    """The size of a file opened with :func:`open_binary` (``fstat`` for a local one, no request)."""
    if isinstance(fh, _RemoteFile):
        return fh.size
    return os.fstat(fh.fileno()).st_size


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """A whole (small) file, or its first ``limit`` bytes."""
    with open_binary(path) as fh:
        return fh.read() if limit is None else fh.read(limit)


class _RemoteFile:
    """An fsspec file whose client errors become ``FileNotFoundError``/``PermissionError`` (the run's
    problem) or :class:`StorageError` (the endpoint's)."""

    def __init__(self, raw: IO[bytes], url: str) -> None:
        self._raw = raw
        self.name = url

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all when ``n`` < 0)."""
        return cast(bytes, self._call(self._raw.read, n))

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; the number of bytes read."""
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def read1(self, n: int = -1) -> bytes:
        """As :meth:`read` (the fsspec file buffers already)."""
        return self.read(n)

    def readline(self, limit: int = -1) -> bytes:
        """One line."""
        return cast(bytes, self._call(self._raw.readline, limit))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset``."""
        return cast(int, self._call(self._raw.seek, offset, whence))

    def tell(self) -> int:
        """The current offset."""
        return self._raw.tell()

    def seekable(self) -> bool:
        """Always: ranges are requested by offset."""
        return True

    def readable(self) -> bool:
        """Always."""
        return True

    def writable(self) -> bool:
        """Never."""
        return False

    @property
    def closed(self) -> bool:
        """Whether closed."""
        return bool(self._raw.closed)

    @property
    def size(self) -> int:
        """The object's size (from the listing or the HEAD request)."""
        return int(getattr(self._raw, "size", 0) or 0)

    def close(self) -> None:
        """Close the underlying file."""
        self._raw.close()

    def __enter__(self) -> _RemoteFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stat(self) -> FileStat | None:
        """The object's stat from what opening it learnt (``None`` if it learnt nothing)."""
        details = getattr(self._raw, "_details", None)
        return _stat_of(details) if isinstance(details, Mapping) else None

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except FileNotFoundError:
            raise _gone(self.name) from None
        except (PermissionError, IsADirectoryError):
            raise
        except OSError as exc:
            if type(exc).__name__ == "FileExpired":  # fsspec's: the ETag no longer matches
                raise OSError(errno.ESTALE, "the object changed since it was listed", self.name) from None
            raise _unavailable(self.name, exc) from None
        except ValueError:  # I/O on a closed file, a bad whence: the caller's bug, as for a local file
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(self.name, exc) from None
