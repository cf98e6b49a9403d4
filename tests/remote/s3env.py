"""What the object-storage tests share besides fixtures: the sample logs, moto's dummy AWS environment,
a free port, an endpoint that stops answering. A module of its own, because ``from conftest import ...``
gets whichever ``conftest`` module pytest imported last (tests/trackers has one too) and fails in a full
run."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_LOGS = ROOT / "sample_logs"

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --storage-option flags that make a silent endpoint fail within seconds
FAST_FAIL = ("--storage-option", "config_kwargs.read_timeout=1", "--storage-option", "config_kwargs.connect_timeout=1")


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; ``forward_to`` makes it a
    proxy to a real endpoint until :meth:`hang` (then every connection, open or new, goes silent)."""

    def __init__(self, forward_to: tuple[str, int] | None = None) -> None:
        self.forward_to = forward_to
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    @classmethod
    def proxy_to(cls, endpoint: str) -> BlackHole:
        """A proxy to ``http://127.0.0.1:PORT`` (the moto endpoint) until :meth:`hang`."""
        return cls(forward_to=("127.0.0.1", int(endpoint.rsplit(":", 1)[1])))

    def hang(self) -> None:
        self.forward_to = None
        for s in self.held:  # close forwarded connections: the client's pool must open new ones
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        for s in self.held:
            s.close()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.forward_to is not None:
                upstream = socket.create_connection(self.forward_to)
                self.held.append(upstream)
                threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.forward_to is not None and (data := src.recv(65536)):
                dst.sendall(data)
        except OSError:
            pass
