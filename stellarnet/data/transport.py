"""How a fetch waits on VizieR: one deadline for the whole answer, the elapsed-time line, and
the operating system's reason inside a requests error. Imported only when a fetch happens.

One deadline for a whole HTTP answer (connecting, the first byte and the last): requests'
``timeout`` bounds each wait on the socket, not the answer, so a server that sends two bytes
a second never lets a single wait run out, and the download goes on for hours.
:class:`DeadlineAdapter` is a requests transport adapter (mounted on the session astroquery
uses) that gives every request the time left until one deadline, as its connect and read
timeouts, and a watchdog that shuts down the request's socket when the deadline passes, so a
blocked read returns at once. A request that meets the deadline raises
``requests.exceptions.ReadTimeout``, which callers already treat as a timeout.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Deadline:
    """``seconds`` from now; sockets handed to :meth:`watch` are shut down when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        """Seconds left (a millisecond at least, so that a timeout of 0 is never 'no timeout')."""
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has passed)."""
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _cut(sock)
            elif all(sock is not known for known in self._sockets):
                self._sockets.append(sock)

    def start(self) -> None:
        """Start the watchdog (once; later calls do nothing)."""
        with self._lock:
            if self._timer is None and not self.expired:
                self._timer = threading.Timer(self.remaining(), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def stop(self) -> bool:
        """Stop the watchdog; True if the deadline had already passed."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._sockets.clear()
            return self.expired

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _cut(sock)
            self._sockets.clear()


def _cut(sock: socket.socket) -> None:
    """Shut ``sock`` down so that a read blocked on it in another thread returns now.

    The plain socket call is used even for an SSL socket (SSLSocket.shutdown would also drop
    its SSL object under the reading thread); a socket closed meanwhile is left alone.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watched_pools(deadline: Deadline) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose new connections hand their socket to ``deadline``."""

    class WatchedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class WatchedHTTPSConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose requests, together, end by ``deadline`` (see the module).

    A request made with ``stream=True`` is bounded up to its headers only: its body is read
    later, by the caller.
    """

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _watched_pools(self.deadline)

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any):
        remaining = self.deadline.remaining()
        kwargs["timeout"] = (remaining, remaining)  # connect, and each wait for bytes
        self.deadline.start()
        response = None
        try:
            response = super().send(request, stream=True, **kwargs)
            # a connection made elsewhere (a proxy's pool) is watched from its first byte on
            connection = getattr(response.raw, "connection", None)
            self.deadline.watch(getattr(connection, "sock", None))
            if not stream:
                response.content  # noqa: B018 (reads the whole body under the deadline)
        except BaseException as err:
            expired = self.deadline.stop()
            if response is not None:
                response.close()
            if expired and isinstance(err, requests.exceptions.RequestException | OSError):
                raise self._timeout(request) from err
            raise
        if self.deadline.stop():
            response.close()
            raise self._timeout(request)
        return response

    def _timeout(self, request: requests.PreparedRequest) -> requests.exceptions.ReadTimeout:
        return requests.exceptions.ReadTimeout(
            f"no complete answer within {self.deadline.seconds:g} s", request=request
        )


def mount_deadline(session: requests.Session, seconds: float) -> Deadline:
    """Bound every request ``session`` makes from now on, together, by ``seconds``."""
    deadline = Deadline(seconds)
    adapter = DeadlineAdapter(deadline)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return deadline


def reason(err: Exception) -> str:
    """The operating system's reason inside a requests error, e.g. 'Connection refused'."""
    text = str(err)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"\[SSL: [^\]]+\] ([^'\")(]+)", text)
    return match.group(1).strip() if match else text


@contextlib.contextmanager
def elapsed(description: str, enabled: bool) -> Iterator[None]:
    """Show ``description`` and the elapsed seconds on standard error while the block runs.

    astroquery reads VizieR's answer in one piece, so there is no byte count to show; the
    line appears on terminals only and is removed when the block ends.
    """
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=description, bar_format="{desc} {elapsed}", leave=False, disable=None) as bar:

        def tick() -> None:
            while not done.wait(0.5):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
