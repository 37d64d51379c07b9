"""Fixtures of the geo tests: the real North Carolina sample, a local HTTP server."""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import pytest
import rasterio

SHARED_DATA = Path(os.environ.get("GEOVISION_SHARED_DATA",
                                  Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def north_carolina() -> Path:
    """``nc.gpkg`` of ../shared/data (skipped when it is not there)."""
    path = SHARED_DATA / "north-carolina" / "nc.gpkg"
    if not path.exists():
        pytest.skip(f"shared sample data not found at {path}")
    return path


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with HTTP Range requests, what GDAL's /vsicurl/ asks for."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self) -> BinaryIO | None:  # type: ignore[override]
        path = self.translate_path(self.path.split("?", 1)[0])
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        f = open(path, "rb")  # closed by the caller
        start, end = 0, size - 1
        if m:
            start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
            f.seek(start)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        outputfile.write(source.read(self._remaining))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on localhost: (folder, base URL).

    GDAL lists a remote folder when it opens a file there (to find sidecar files), which this
    small server does not answer well; reading with GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR
    (what cloud reads should use anyway) skips it.
    """
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_TIMEOUT=20):
            yield root, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
