"""An MLflow tracking server read through its public REST API (``/api/2.0/mlflow/...``), stdlib only.

``mlflow://HOST:PORT/<experiment>`` is the server at ``http://HOST:PORT`` (``mlflow+https://`` for
TLS) and the experiment of that name (an experiment id works too; no experiment: every active one).
Runs are listed with ``runs/search`` and each metric's history is read with
``metrics/get-history``, both paged with ``page_token`` until the server gives none: every point.

Why not ``MlflowClient``: its HTTP layer retries a failing request up to 7 times with exponential
backoff and waits up to 120 s per request, so a server that is down or answers 500 takes minutes to
report; here every request has one timeout (``MLFLOW_HTTP_REQUEST_TIMEOUT`` seconds, default
:data:`DEFAULT_TIMEOUT`, the variable the mlflow client reads too) bounding the connection and the
whole response, and no retry: the error is reported at once. Credentials come from the variables the
mlflow client reads: ``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (basic).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import WarmcheckError
from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._mlflowcommon import MlflowRun, source_read
from .interface import diag

SCHEMES = {"mlflow": "http", "mlflow+http": "http", "mlflow+https": "https"}
DEFAULT_TIMEOUT = 30.0
HISTORY_PAGE = 25_000  # points per metrics/get-history page
SEARCH_PAGE = 1000  # runs per runs/search page (the server allows up to 50,000)
_MAX_BODY = 512 << 20  # one response larger than this is refused, not loaded


class MlflowServerError(WarmcheckError):
    """The tracking server could not be read (down, an HTTP error, a timeout, not an MLflow server)."""


@dataclass(frozen=True)
class ServerUrl:
    """A parsed ``mlflow://HOST:PORT/<experiment>``: ``base`` is the http(s) URL of the server."""

    given: str
    base: str
    experiment: str


def is_server_url(text: str) -> bool:
    """Whether a command-line path is an MLflow server URL."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def parse_url(text: str) -> ServerUrl:
    """Parse ``mlflow://HOST:PORT/<experiment>``; raises :class:`MlflowServerError` if malformed."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise MlflowServerError(f"{text}: not an MLflow server URL (expected mlflow://HOST:PORT/<experiment>)")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise MlflowServerError(f"{text}: bad port in the MLflow server URL") from None
    base = f"{SCHEMES[parts.scheme.lower()]}://{parts.netloc}"
    return ServerUrl(text.rstrip("/"), base, urllib.parse.unquote(parts.path.strip("/")))


def timeout() -> float:
    """Seconds allowed per request (``MLFLOW_HTTP_REQUEST_TIMEOUT``, default :data:`DEFAULT_TIMEOUT`)."""
    try:
        value = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def call(base: str, endpoint: str, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None) -> Any:
    """One REST call; the parsed JSON answer. Raises :class:`MlflowServerError` with a clear reason."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    auth = _auth()
    if auth:
        request.add_header("Authorization", auth)
    limit = timeout()
    deadline = time.monotonic() + limit
    try:
        with urllib.request.urlopen(request, timeout=limit) as response:  # noqa: S310 (http/https only)
            raw = _read_body(response, deadline, limit)
    except urllib.error.HTTPError as exc:
        raise MlflowServerError(f"the MLflow server at {base} answered HTTP {exc.code} to {endpoint}"
                                f"{_error_text(exc)}") from None
    except TimeoutError:
        raise MlflowServerError(f"the MLflow server at {base} did not answer {endpoint} within {limit:g} s "
                                "(MLFLOW_HTTP_REQUEST_TIMEOUT)") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise MlflowServerError(f"the MLflow server at {base} did not answer {endpoint} within {limit:g} s "
                                    "(MLFLOW_HTTP_REQUEST_TIMEOUT)") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise MlflowServerError(f"cannot reach the MLflow server at {base}: {text}") from None
    except (OSError, ValueError) as exc:  # connection reset mid-answer, a bad URL, http.client errors
        raise MlflowServerError(f"the MLflow server at {base} failed on {endpoint}: {type(exc).__name__}: "
                                f"{exc}") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise MlflowServerError(f"{base} answered {endpoint} with something that is not JSON: not an MLflow "
                                "tracking server?") from None


def _read_body(response: Any, deadline: float, limit: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > _MAX_BODY:
            raise ValueError(f"answer larger than {_MAX_BODY >> 20} MiB")
        chunks.append(chunk)


def _auth() -> str | None:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return f"Bearer {token}"
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(exc.read(1 << 16) or b"{}")
    except (ValueError, OSError):
        return ""
    if isinstance(doc, dict) and doc.get("message"):
        return f": {doc.get('error_code', '')} {str(doc['message'])[:300]}".replace(":  ", ": ")
    return ""


def _experiments(url: ServerUrl) -> list[tuple[str, str]]:
    """(id, name) of the experiment the URL names, or of every active experiment."""
    if url.experiment:
        try:
            exp = call(url.base, "experiments/get-by-name", {"experiment_name": url.experiment})["experiment"]
            return [(str(exp["experiment_id"]), str(exp.get("name", url.experiment)))]
        except MlflowServerError as exc:
            if "HTTP 404" not in str(exc) and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
        except (KeyError, TypeError):
            raise MlflowServerError(f"{url.base}: unexpected answer to experiments/get-by-name") from None
        if url.experiment.isdigit():
            try:
                exp = call(url.base, "experiments/get", {"experiment_id": url.experiment})["experiment"]
                return [(str(exp["experiment_id"]), str(exp.get("name", url.experiment)))]
            except MlflowServerError as exc:
                if "HTTP 404" not in str(exc) and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                    raise
            except (KeyError, TypeError):
                pass
        raise MlflowServerError(f"{url.given}: the MLflow server at {url.base} has no experiment named "
                                f"{url.experiment!r}")
    out: list[tuple[str, str]] = []
    for page in _pages(url.base, "experiments/search", {"max_results": SEARCH_PAGE, "view_type": "ACTIVE_ONLY"}):
        out.extend((str(e["experiment_id"]), str(e.get("name", ""))) for e in page.get("experiments", ()))
    return out


def _pages(base: str, endpoint: str, body: dict[str, Any]) -> Any:
    token = None
    while True:
        answer = call(base, endpoint, body=body if token is None else {**body, "page_token": token})
        if not isinstance(answer, dict):
            raise MlflowServerError(f"{base}: unexpected answer to {endpoint}")
        yield answer
        previous, token = token, answer.get("next_page_token")
        if not token:
            return
        if token == previous:
            raise MlflowServerError(f"{base}: {endpoint} paging does not advance (the same page_token twice)")


def list_runs(url: ServerUrl) -> list[tuple[str, str, str]]:
    """(run id, experiment name, run name) of every active run; raises :class:`MlflowServerError`."""
    runs: list[tuple[str, str, str]] = []
    try:
        for exp_id, exp_name in _experiments(url):
            for page in _pages(url.base, "runs/search", {"experiment_ids": [exp_id], "max_results": SEARCH_PAGE,
                                                         "run_view_type": "ACTIVE_ONLY"}):
                for r in page.get("runs", ()):
                    info = r["info"]
                    run_id = str(info.get("run_id") or info["run_uuid"])
                    runs.append((run_id, exp_name, str(info.get("run_name", ""))))
    except (KeyError, TypeError, AttributeError):
        raise MlflowServerError(f"{url.base}: unexpected answer to runs/search: not an MLflow tracking "
                                "server?") from None
    return sorted(runs, key=lambda r: (r[1], r[2], r[0]))


def read_server_run(path: str) -> SourceRead:
    """Read one run at ``mlflow://HOST:PORT/<experiment>/<run id>`` (the location discovery made).

    A server error for this run is a WC001 finding and no points: half a run would give findings about
    a run that was not seen whole.
    """
    head, _, run_id = path.rstrip("/").rpartition("/")
    try:
        url = parse_url(head)
        run = _fetch(url.base, run_id)
        run.experiment = url.experiment
    except MlflowServerError as exc:
        return SourceRead(SourceInfo(path, Format.MLFLOW), findings=[diag(
            "WC001", f"run {run_id} could not be read: {exc}", path, run_id=run_id)])
    findings: list[Finding] = []
    if not run.metrics:
        findings.append(diag("WC002", "no data: the MLflow run has no metric points", path, run_id=run_id))
    return source_read(path, run, findings)


def _fetch(base: str, run_id: str) -> MlflowRun:
    try:
        doc = call(base, "runs/get", {"run_id": run_id})["run"]
        info, data = doc["info"], doc.get("data", {})
        run = MlflowRun(run_id, run_name=str(info.get("run_name", "")), status=str(info.get("status", "")),
                        start_time=_int(info.get("start_time")), end_time=_int(info.get("end_time")))
        run.params = {str(p["key"]): str(p.get("value", "")) for p in data.get("params", ())}
        run.tags = {str(t["key"]): str(t.get("value", "")) for t in data.get("tags", ())}
        keys = sorted({str(m["key"]) for m in data.get("metrics", ())})
    except (KeyError, TypeError, AttributeError):
        raise MlflowServerError(f"{base}: unexpected answer to runs/get") from None
    for key in keys:
        steps: list[int] = []
        values: list[float] = []
        stamps: list[int] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
            if token:
                params["page_token"] = token
            page = call(base, "metrics/get-history", params)
            try:
                for m in page.get("metrics", ()):
                    steps.append(int(m.get("step", 0)))
                    values.append(float(m["value"]))  # "NaN", "Infinity" as strings too
                    stamps.append(int(m.get("timestamp", 0)))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise MlflowServerError(f"{base}: unexpected answer to metrics/get-history ({key})") from None
            previous, token = token, page.get("next_page_token") or None
            if not token:
                break
            if token == previous:
                raise MlflowServerError(f"{base}: metrics/get-history paging does not advance ({key})")
        run.records += len(steps)
        if steps:
            run.metrics[key] = (steps, values, stamps)
    return run


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
