"""A TCP proxy between our processes and PostgreSQL that fails the way networks do: it refuses connections, resets
the one connection that sends a given statement, or stalls every connection (open, but silent) until told to go on.
"""

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


def _reset(sock: socket.socket) -> None:
    """Drop a connection at once, as a crashed host or a middlebox's reset would (no orderly goodbye)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Proxy:
    """Forwards 127.0.0.1:`port` to the server; `refuse`, `stall`, `reset_on` and `restore` change how."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.state = threading.Condition()
        self.mode = "pass"
        self.pattern: bytes | None = None
        self.resets = 0  # connections reset by `reset_on`
        self.links: set[tuple[socket.socket, socket.socket]] = set()
        threading.Thread(target=self._accept, name="dbproxy", daemon=True).start()

    def url(self, url: str) -> str:
        """`url` (a Postgres URL) sent through this proxy."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    # ------------------------------------------------------------ failures

    def refuse(self) -> None:
        """The database is down: open connections break, new ones are dropped as soon as they arrive."""
        with self.state:
            self.mode = "refuse"
            links, self.links = self.links, set()
        for client, server in links:
            _reset(client)
            _reset(server)

    def stall(self) -> None:
        """The network goes silent: connections stay open, but nothing gets through either way."""
        with self.state:
            self.mode = "stall"

    def reset_on(self, statement: bytes) -> None:
        """Reset the next connection that sends `statement`, before the server sees it; once."""
        with self.state:
            self.pattern = statement

    def restore(self) -> None:
        """Back to forwarding everything; what a stall held back goes through now."""
        with self.state:
            self.mode = "pass"
            self.state.notify_all()

    def close(self) -> None:
        self.refuse()
        self.listener.close()

    # ------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.mode == "refuse":
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.server, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self.state:
                self.links.add((client, server))
            for source, target, watch in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(source, target, watch, (client, server)), daemon=True).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, watch: bool, link: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            while data := source.recv(65536):
                with self.state:
                    while self.mode == "stall":
                        self.state.wait()
                    hit = watch and self.pattern is not None and self.pattern in data
                    if hit:
                        self.pattern = None
                        self.resets += 1
                if hit:
                    break
                target.sendall(data)
        except OSError:
            pass
        with self.state:
            self.links.discard(link)
        for sock in link:
            _reset(sock)


@contextmanager
def proxy_to(url: str) -> Iterator[Proxy]:
    """A proxy in front of the Postgres server that `url` names, closed afterwards."""
    parsed = make_url(url)
    proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()
