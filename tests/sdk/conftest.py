"""A real `runnel serve` on a temporary data directory, and the official SDK client for it.

The server is the debug binary cargo built (`$RUNNEL_BIN`, else `$CARGO_TARGET_DIR/debug/runnel`,
else `target/debug/runnel` of the repository). The client authenticates exactly as a CodeArts
user would: `BasicCredentials(ak, sk, project_id)` from `bootstrap-credentials.json`, with only
the endpoint changed.
"""

import json
import os
import pathlib
import queue
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcodeartspipeline.v2 import CodeArtsPipelineClient

REPO = pathlib.Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120


def runnel_binary():
    if os.environ.get("RUNNEL_BIN"):
        return pathlib.Path(os.environ["RUNNEL_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "runnel"


class Server:
    """`runnel serve` as a child process; its JSON log lines are collected for failure reports."""

    def __init__(self, data_dir):
        binary = runnel_binary()
        if not binary.exists():
            raise RuntimeError(f"{binary} does not exist: build it with `cargo build -p runnel-cli`")
        env = dict(os.environ, RUNNEL__LOGGING__FORMAT="json")
        self.process = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--executor-slots", "4",
             "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )
        self.log = []
        ready = queue.Queue()

        def read_stderr():
            for line in self.process.stderr:
                self.log.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == "ready" and event.get("listen"):
                    ready.put(event["listen"])

        threading.Thread(target=read_stderr, daemon=True).start()
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        try:
            self.listen = ready.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError("runnel serve never got ready:\n" + "".join(self.log))
        self.credentials = json.loads((pathlib.Path(data_dir) / "bootstrap-credentials.json").read_text())
        self.endpoint = f"http://{self.listen}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="runnel-sdk-") as data_dir:
        server = Server(data_dir)
        try:
            yield server
        finally:
            server.stop()


def make_client(server, ak=None, sk=None):
    creds = server.credentials
    credentials = BasicCredentials(ak or creds["ak"], sk or creds["sk"], creds["project_id"])
    config = HttpConfig.get_default_config()
    config.timeout = (10, 60)
    return (CodeArtsPipelineClient.new_builder()
            .with_http_config(config)
            .with_credentials(credentials)
            .with_endpoint(server.endpoint)
            .build())


@pytest.fixture(scope="session")
def client(server):
    return make_client(server)


@pytest.fixture(scope="session")
def project_id(server):
    return server.credentials["project_id"]


def wait_until(what, probe, timeout=60, interval=0.2):
    """Calls `probe` until it returns something truthy; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
