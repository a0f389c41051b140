"""`harness.download`: full download, resume with HTTP Range, checks, and the offline message."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from benchmarks.errors import DataFileError, HarnessError
from harness.download import download

BLOB = bytes(range(256)) * 4000  # 1,024,000 bytes


class Handler(BaseHTTPRequestHandler):
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        if self.path != "/blob":
            self.send_error(404)
            return
        header = self.headers.get("Range")
        Handler.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(BLOB) - start))
        self.end_headers()
        self.wfile.write(BLOB[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.ranges = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_download_and_skip(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "blob.bin"
    md5 = hashlib.md5(BLOB).hexdigest()
    assert download(f"{server}/blob", dest, expected_size=len(BLOB), md5=md5, progress=False) == dest
    assert dest.read_bytes() == BLOB and not (tmp_path / "sub" / "blob.bin.part").exists()
    download(f"{server}/blob", dest, expected_size=len(BLOB), progress=False)
    assert Handler.ranges == [None]  # the second call did not download again


def test_resume_from_part(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(BLOB[:300_000])
    download(f"{server}/blob", dest, progress=False)
    assert Handler.ranges == ["bytes=300000-"] and dest.read_bytes() == BLOB


def test_checks(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="MD5"):
        download(f"{server}/blob", tmp_path / "a", md5="0" * 32, progress=False)
    with pytest.raises(DataFileError, match="expected 5"):
        download(f"{server}/blob", tmp_path / "b", expected_size=5, progress=False)
    with pytest.raises(HarnessError, match="HTTP 404"):
        download(f"{server}/nothing", tmp_path / "new" / "c", progress=False)
    assert list(tmp_path.iterdir()) == []  # the folder made for "c" too


def test_offline_message(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nasbench_only108.tfrecord"
    dest = tmp_path / "data" / "nasbench_only108.tfrecord"
    with pytest.raises(HarnessError) as caught:
        download(url, dest, progress=False)
    text = str(caught.value)
    assert "cannot reach 127.0.0.1" in text and f"curl -L -C - -o {dest} {url}" in text and "\n" not in text
    assert list(tmp_path.iterdir()) == []  # the folder made for it is gone again
