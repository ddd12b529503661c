"""Tokenize under storage faults (issue 12.4) and the bundle check on resume (12.2), with real Ray Data and a
moto S3 server behind a TCP proxy that refuses connections during an injected outage; written output read back
(issue 22.5) through an HTTP proxy that serves corrupted corpus files."""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time
from pathlib import Path

import boto3
import pytest
import torch

import sweettok
from sweettok.bundle import BundleIntegrityError
from sweettok.storage import StorageUnavailableError
from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset
from sweettok_platform.core.reader import read_errors, read_table
from sweettok_platform.tokenize.samples import make_sample_dataset

pytestmark = pytest.mark.timeout(900)
VIDEO_GET = re.compile(rb"GET /[^ ]+\.(mp4|avi)")


class FlakyProxy:
    """127.0.0.1 TCP proxy to ``target``; the first GET of a video starts an outage of ``outage_s`` seconds
    during which every connection, open or new, is closed at once."""

    def __init__(self, target: tuple[str, int], outage_s: float) -> None:
        self.target, self.outage_s = target, outage_s
        self.down_until = 0.0
        self.triggered = False
        self.conns: list[socket.socket] = []
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def _cut(self) -> None:
        self.down_until = time.monotonic() + self.outage_s
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.down():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, inbound: bool) -> None:
        try:
            while data := src.recv(65536):
                if inbound and not self.triggered and VIDEO_GET.search(data):
                    self.triggered = True
                    self._cut()
                    return
                if self.down():
                    return self._cut()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
        self._cut()


class CorruptingS3:
    """127.0.0.1 HTTP proxy to an S3 server; while ``corrupt`` is set, every object under a corpus's ``data/``
    comes back as zeros of the same length (as from storage that damaged it). Counts what it damaged."""

    def __init__(self, target: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host, port = target.split("://")[1].split(":")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(host, int(port), timeout=60)
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                if proxy.corrupt and self.command == "GET" and "/data/" in self.path and answer.status < 300 and data:
                    data = bytes(len(data))
                    proxy.corrupted += 1
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length") and \
                            not k.lower().startswith("x-amz-checksum"):
                        self.send_header(k, v)
                self.send_header("Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

        self.corrupt, self.corrupted = True, 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("faults") / "videos"
    make_sample_dataset(root, [p for p in real_videos if p.name == "bikes.mp4"], layout="folders", per_class=3,
                        frames=6)
    return root


def _upload(videos: Path, bucket: str) -> str:
    s3 = boto3.client("s3")
    for path in sorted(videos.rglob("*.mp4")):
        s3.upload_file(str(path), bucket, f"in/{path.relative_to(videos).as_posix()}")
    return f"s3://{bucket}/in"


@pytest.fixture
def through_proxy(s3_endpoint: str, monkeypatch):
    """Start a proxy in front of moto and point this process (and the Ray tasks it starts) at it."""
    proxies = []

    def start(outage_s: float) -> FlakyProxy:
        host, port = s3_endpoint.split("://")[1].split(":")
        proxy = FlakyProxy((host, int(port)), outage_s)
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # the SDK alone cannot ride out the outage
        return proxy

    yield start
    for p in proxies:
        p.close()


def _config(root: str, output: str, **extra) -> TokenizeJobConfig:
    return TokenizeJobConfig.from_dict({"source": {"kind": "folders", "root": root}, "output": output,
                                     "encode": {"preset": "tiny"}, "files_per_shard": 3, "progress": False,
                                     "decode_timeout_s": 60.0, **extra})


def test_a_short_s3_outage_loses_no_clip(ray_cluster, s3_bucket: str, videos: Path, tmp_path: Path,
                                         through_proxy) -> None:
    root = _upload(videos, s3_bucket)
    proxy = through_proxy(outage_s=4.0)
    card = tokenize_dataset(_config(root, str(tmp_path / "corpus"), storage_backoff_s=1.0, storage_retries=4))
    assert proxy.triggered, "the outage was never injected"
    assert read_errors(str(tmp_path / "corpus")).num_rows == 0 and card.files_failed == 0
    assert read_table(str(tmp_path / "corpus")).num_rows == card.clips == 3


def test_an_outage_beyond_the_retries_fails_the_job_naming_storage(ray_cluster, s3_bucket: str, videos: Path,
                                                                   tmp_path: Path, through_proxy) -> None:
    root = _upload(videos, s3_bucket)
    through_proxy(outage_s=3600.0)
    with pytest.raises(StorageUnavailableError, match="input storage unavailable") as failed:
        tokenize_dataset(_config(root, str(tmp_path / "corpus"), storage_backoff_s=0.2, storage_retries=1,
                                 task_retries=1))
    assert "s3://" in str(failed.value) and "rerun to resume" in str(failed.value)
    assert not read_errors(str(tmp_path / "corpus")).num_rows  # nothing blamed on the files


def test_retry_errors_redoes_recorded_storage_faults(ray_cluster, s3_bucket: str, videos: Path,
                                                     tmp_path: Path) -> None:
    from sweettok_platform.core.corpus import ERROR_SCHEMA, ROW_SCHEMA, ShardStats, write_shard

    root = _upload(videos, s3_bucket)
    out = str(tmp_path / "corpus")
    first = tokenize_dataset(_config(root, out))
    assert first.clips == 3
    # what an older version left after an outage: the shard done, its files recorded as errors
    lost = [{"uri": f"{root}/Bikes/Bikes_00{i}.mp4", "source": f"Bikes/Bikes_00{i}.mp4",
             "reason": "OSError: AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 7"}
            for i in range(3)]
    write_shard(out, ShardStats(shard=0, files=3, clips=0, errors=3), ROW_SCHEMA.empty_table(), lost)
    assert tokenize_dataset(_config(root, out)).clips == 0  # a plain rerun trusts the record
    again = tokenize_dataset(_config(root, out, retry_errors=True))
    assert again.clips == 3 and again.files_failed == 0 and read_errors(out).num_rows == 0
    assert ERROR_SCHEMA.names == ["uri", "source", "reason"]


def test_an_unreadable_file_keeps_its_permission_cause(ray_cluster, videos: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    local = tmp_path / "videos"
    local.mkdir()
    for p in videos.rglob("*.mp4"):
        (local / p.name).write_bytes(p.read_bytes())
    locked = sorted(local.iterdir())[0]
    locked.chmod(0)
    tokenize_dataset(_config(str(local.parent), str(tmp_path / "corpus")))
    reasons = read_errors(str(tmp_path / "corpus"))["reason"].to_pylist()
    assert len(reasons) == 1 and reasons[0].startswith("permission denied")


def test_resume_with_a_tampered_bundle_is_refused(ray_cluster, videos: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    bundle = str(tmp_path / "bundle")
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), bundle)
    out = str(tmp_path / "corpus")
    config = TokenizeJobConfig.from_dict({"source": {"kind": "folders", "root": str(videos)}, "output": out,
                                       "encode": {"bundle": bundle}, "files_per_shard": 1, "progress": False})
    tokenize_dataset(config)
    os.remove(Path(out) / "data" / "part-00001.parquet")  # as if killed midway
    torch.manual_seed(1)  # other weights under the same manifest
    other = sweettok.SweetTokenizer(sweettok.preset("tiny"))
    from safetensors.torch import save

    (Path(bundle) / "model.safetensors").write_bytes(save({k: v.contiguous() for k, v in other.state_dict().items()}))
    with pytest.raises(BundleIntegrityError, match="model.safetensors"):
        tokenize_dataset(config)
    assert not (Path(out) / "data" / "part-00001.parquet").exists()  # no row from the other model


def test_a_corpus_file_that_reads_back_wrong_stops_the_job_and_a_rerun_completes(ray_cluster, s3_endpoint: str,
                                                                                s3_bucket: str, videos: Path,
                                                                                monkeypatch) -> None:
    from sweettok_platform.core import corpus

    proxy = CorruptingS3(s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # this process and the encoders it starts write through it
    monkeypatch.setattr(corpus, "WRITE_BACKOFF_S", 0.05)
    out = f"s3://{s3_bucket}/corpus"
    try:
        with pytest.raises(StorageUnavailableError, match="output storage fault: s3://.*/data/part-00000.parquet read "
                                                          "back with an unreadable footer.*rerun to resume"):
            tokenize_dataset(_config(str(videos), out))
        assert proxy.corrupted >= corpus.WRITE_ATTEMPTS  # each write was read back, and each read-back was wrong
        listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=s3_bucket, Prefix="corpus/data/")
        written = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".parquet")]
        assert written == []  # no damaged file left where a rerun would count it as done
        proxy.corrupt = False
        card = tokenize_dataset(_config(str(videos), out))
        assert card.complete and card.shards_skipped == 0 and card.clips == 3
        assert read_table(out).num_rows == 3
    finally:
        proxy.close()
