"""A local stand-in for VizieR's VOTable service, so fetch tests never touch the network.

:class:`VizierStandIn` answers astroquery's ``POST /viz-bin/votable`` the way VizieR does: it
reads the request script (``-source``, ``-out``, ``-out.max`` and column constraints), selects
rows of a pandas table, and returns them as a VOTable written with :mod:`astropy.io.votable`,
with VizieR's units, UCDs and descriptions for the Gaia DR2 columns. It serves HTTPS with a
certificate the test makes (``trustme``), because astroquery always builds ``https://`` URLs.

Set :attr:`VizierStandIn.fault` to make the next answers go wrong (see :data:`FAULTS`).
"""

from __future__ import annotations

import io
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

PATH = "/viz-bin/votable"

FIELDS: dict[str, tuple[str, str, str, str]] = {
    # name: (VOTable datatype, unit, UCD, description), as VizieR describes I/345/gaia2
    "Lum": ("double", "Lsun", "phys.luminosity", "? Stellar luminosity (lum_val)"),
    "BP-RP": ("float", "mag", "phot.color;em.opt.B;em.opt.R", "? BP-RP colour (bp_rp)"),
    "Teff": ("double", "K", "phys.temperature.effective", "? Effective temperature (teff_val)"),
}

FAULTS = {
    None: "answer like VizieR",
    "http500": "HTTP 500 with an HTML body",
    "html": "HTTP 200 with an HTML page instead of a VOTable",
    "malformed": "HTTP 200 with a VOTable cut off mid-element",
    "empty": "a valid VOTable whose table has no rows",
    "hang": "accept the request and never answer (until reset)",
    "ignore_filters": "answer without applying the column constraints",
    "drop:COL": "leave column COL out of the answer (a schema change)",
    "nan:COL": "blank COL in every 10th row",
    "null:COL": "blank COL in every row",
    "no_complete_row": "blank Lum in even rows and Teff in odd rows (no row has both)",
    "extra_rows:N": "answer N rows whatever -out.max asks (the stand-in's rows repeated)",
    "trickle": "send the headers, then the body at 2 bytes/s (until reset or hang-up)",
    "trickle_head": "send the whole answer, status line included, at 2 bytes/s",
}

TRICKLE_INTERVAL = 0.5
"""Seconds between two bytes of a trickled answer (2 bytes/s)."""

TRICKLE_LIMIT = 6.0
"""Seconds after which a trickled answer is cut off, so that a client without a deadline
fails a test in seconds instead of hanging it for hours."""

_CONSTRAINT = re.compile(r"^\s*(>=|<=|>|<|=)\s*([-+0-9.eE]+)\s*$")


def parse_request(body: str) -> dict[str, Any]:
    """Read astroquery's VizieR request script (one ``-key=value`` per line)."""
    request: dict[str, Any] = {"source": None, "out": None, "max": 50, "filters": {}}
    for line in body.splitlines():
        key, _, value = line.partition("=")
        if key == "-source":
            request["source"] = value
        elif key == "-out":
            request["out"] = value.split(",")
        elif key == "-out.max":
            request["max"] = None if value == "unlimited" else int(value)
        elif not key.startswith("-") and value:
            request["filters"][key] = value
    return request


def select_rows(frame: pd.DataFrame, request: dict[str, Any], apply_filters=True) -> pd.DataFrame:
    """The rows and columns VizieR would return for ``request``."""
    keep = np.ones(len(frame), dtype=bool)
    for name, expression in request["filters"].items() if apply_filters else ():
        op, number = _CONSTRAINT.match(expression).groups()
        values = frame[name].to_numpy(dtype=float)
        keep &= {
            ">": values > float(number),
            "<": values < float(number),
            ">=": values >= float(number),
            "<=": values <= float(number),
            "=": values == float(number),
        }[op]
    columns = [name for name in (request["out"] or frame.columns) if name in frame.columns]
    return frame.loc[keep, columns].head(request["max"])


def votable_bytes(frame: pd.DataFrame, table_name: str) -> bytes:
    """``frame`` as a VizieR-like VOTable document."""
    votable = VOTableFile(version="1.3")  # CDS units (e.g. "Lsun") as VizieR writes them
    resource = Resource(name=table_name.rsplit("/", 1)[0])
    votable.resources.append(resource)
    table = TableElement(votable, ID=table_name.replace("/", "_"), name=table_name)
    table.description = "Gaia DR2 source catalogue (stand-in)"
    resource.tables.append(table)
    for name in frame.columns:
        datatype, unit, ucd, description = FIELDS[name]
        field = Field(
            votable, ID=name.replace("-", "_"), name=name, datatype=datatype, unit=unit, ucd=ucd
        )
        field.description = description
        table.fields.append(field)
    table.create_arrays(len(frame))
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=float)
        table.array[name] = values
        table.array.mask[name] = np.isnan(values)
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


class VizierStandIn:
    """An HTTPS server on 127.0.0.1 that answers VizieR VOTable queries from ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The catalog rows to serve (columns named as in :data:`FIELDS`).
    ssl_context : ssl.SSLContext
        Server-side context holding the test certificate for 127.0.0.1.

    Attributes
    ----------
    server : str
        ``"127.0.0.1:PORT"``, the value for astroquery's ``vizier_server``.
    requests : list of dict
        Every request received: ``path`` and the parsed script (see :func:`parse_request`).
    fault : str or None
        How to answer (a key of :data:`FAULTS`, with COL filled in).
    """

    def __init__(self, frame: pd.DataFrame, ssl_context: ssl.SSLContext) -> None:
        self.frame = frame
        self.requests: list[dict[str, Any]] = []
        self.fault: str | None = None
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.handle_error = lambda request, address: None  # clients that hang up
        self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self.server = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> VizierStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Answer normally again, forget the requests, and let a hanging answer go."""
        self.fault = None
        self.requests.clear()
        self._release.set()
        self._release = threading.Event()

    def answer(self, path: str, body: str) -> tuple[int, str, bytes]:
        """The (status, content type, body) VizieR would send, with :attr:`fault` applied."""
        request = parse_request(body)
        self.requests.append({"path": path, "body": body, **request})
        fault = self.fault or ""
        if path != PATH:
            return 404, "text/html", b"<html><body>Not found</body></html>"
        if fault == "hang":
            self._release.wait(timeout=10)
        if fault == "http500":
            return 500, "text/html", b"<html><body>Internal Server Error</body></html>"
        if fault == "html":
            return 200, "text/html", b"<html><body>VizieR is under maintenance</body></html>"
        rows = select_rows(self.frame, request, apply_filters=fault != "ignore_filters")
        if fault.startswith("extra_rows:"):
            count = int(fault.removeprefix("extra_rows:"))
            rows = select_rows(self.frame, {**request, "max": len(self.frame)})
            rows = rows.iloc[np.arange(count) % len(rows)].reset_index(drop=True)
        if fault == "empty":
            rows = rows.iloc[:0]
        if fault.startswith("drop:"):
            rows = rows.drop(columns=fault.removeprefix("drop:"))
        if fault.startswith("nan:"):
            rows = rows.copy()
            rows.iloc[::10, rows.columns.get_loc(fault.removeprefix("nan:"))] = np.nan
        if fault.startswith("null:"):
            rows = rows.copy()
            rows[fault.removeprefix("null:")] = np.nan
        if fault == "no_complete_row":
            rows = rows.copy()
            rows.iloc[::2, rows.columns.get_loc("Lum")] = np.nan
            rows.iloc[1::2, rows.columns.get_loc("Teff")] = np.nan
        document = votable_bytes(rows, request["source"])
        if fault == "malformed":
            document = document[: len(document) // 2]
        return 200, "text/xml", document

    def trickle(self, stream: Any, data: bytes) -> None:
        """Write ``data`` to ``stream`` one byte every :data:`TRICKLE_INTERVAL` seconds, until
        all is sent, the client hangs up, :meth:`reset`, or :data:`TRICKLE_LIMIT` seconds."""
        release = self._release
        steps = int(TRICKLE_LIMIT / TRICKLE_INTERVAL)
        for offset in range(min(len(data), steps)):
            stream.write(data[offset : offset + 1])
            if release.wait(TRICKLE_INTERVAL):
                return

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode("utf-8")
                fault = standin.fault or ""
                status, content_type, payload = standin.answer(self.path, body)
                try:
                    if fault == "trickle_head":
                        head = (
                            f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
                            f"Content-Type: {content_type}\r\n"
                            f"Content-Length: {len(payload)}\r\n\r\n"
                        )
                        standin.trickle(self.wfile, head.encode("ascii") + payload)
                        return
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if fault == "trickle":
                        standin.trickle(self.wfile, payload)
                    else:
                        self.wfile.write(payload)
                except OSError:  # the client gave up (timeout tests)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler
