"""Fixtures for the server tests: a `ballast serve` process on a free loopback port."""
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "test-key-123"


def ballast_bin():
    return os.environ.get("BALLAST_BIN", str(ROOT / "build" / "bin" / "ballast"))


def default_model():
    if os.environ.get("BALLAST_SERVER_TEST_MODEL"):
        return pathlib.Path(os.environ["BALLAST_SERVER_TEST_MODEL"])
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    dirs = [os.environ.get("BALLAST_MODEL_DIR"),
            os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ballast", "models"),
            "/tmp/models"]
    for d in dirs:
        if d and (pathlib.Path(d) / name).exists():
            return pathlib.Path(d) / name
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, model, extra=(), api_key=API_KEY, wait_ready=True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        args = [ballast_bin(), "serve", "--model", str(model), "--port", str(self.port), "--threads", "2"]
        if api_key:
            args += ["--api-key", api_key]
        args += list(extra)
        env = dict(os.environ)
        env.pop("BALLAST_API_KEY", None)
        self.log_path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"ballast-serve-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_listening()
        if wait_ready:
            self.wait_ready()

    def health(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def wait_listening(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("ballast serve exited: " + self.log_path.read_text())
            if self.health() is not None:
                return
            time.sleep(0.02)
        raise RuntimeError("ballast serve did not start listening")

    def wait_ready(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.health() == 200:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("ballast serve exited: " + self.log_path.read_text())
            time.sleep(0.05)
        raise RuntimeError("ballast serve did not become ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def logs(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def model_path():
    m = default_model()
    if m is None:
        pytest.skip("SmolLM2-135M-Instruct.Q4_1.gguf not found (set BALLAST_MODEL_DIR)")
    return m


@pytest.fixture(scope="session")
def server(model_path):
    s = ServerProcess(model_path, ["--ctx-size", "512", "--max-batch", "8", "--max-queue", "32",
                                   "--max-body-bytes", "65536", "--served-model-name", "smol,smol-alias"])
    yield s
    rc = s.stop()
    assert rc == 0, s.logs()


@pytest.fixture(scope="session")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
