"""A real S3 endpoint on 127.0.0.1 (moto's server mode) and the real s3fs client talking HTTP to it.

``moto_endpoint`` starts one server per test session on a free port; ``s3_tree`` creates a fresh bucket per
test and uploads a local tree into it. Credentials are moto's dummies, set in the environment (never
real AWS: every client gets ``endpoint_url`` of the local server); the AWS config files are hidden.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

s3fs = pytest.importorskip("s3fs", reason="the [s3] extra (s3fs) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

from s3env import AWS_ENV as _AWS_ENV  # noqa: E402
from s3env import SAMPLE_LOGS, free_port  # noqa: E402, F401

from warmcheck import storage  # noqa: E402


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server running for the session."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in _AWS_ENV.items():
        monkeypatch.setenv(key, value)
    previous = storage.storage_options()
    yield
    storage.set_storage_options(previous)
    storage.forget_listings()


def client_options(endpoint: str) -> dict[str, Any]:
    """What a test's own s3fs client (uploads, deletes) is made with."""
    return {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A real s3fs filesystem on the moto server (a fresh instance: no listing cache shared with warmcheck's)."""
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **client_options(moto_endpoint))


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new empty bucket's name."""
    name = f"wc-{uuid.uuid4().hex[:12]}"
    s3.mkdir(name)
    return name


@pytest.fixture
def upload(s3: Any, bucket: str) -> Callable[[Path, str], str]:
    """``upload(local_dir, prefix)`` -> ``s3://bucket/prefix``: every file under ``local_dir`` put there."""

    def put(local: Path, prefix: str) -> str:
        for path in sorted(local.rglob("*")):
            if path.is_file():
                s3.pipe(f"{bucket}/{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())
        return f"s3://{bucket}/{prefix}"

    return put
