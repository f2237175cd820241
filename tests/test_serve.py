"""`pyengine serve`: real HTTP requests to a real uvicorn on loopback, started and stopped by the test."""
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import fastapi  # noqa: F401 - the serve extra is in the test extra: the suite runs the server, no skip
import pytest
import uvicorn  # noqa: F401

from pyengine import lm


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, body=None, method=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    corpus = tmp / "c.txt"
    corpus.write_text("hello world. " * 200)
    r = lm.train(lm.TrainConfig(data=str(corpus), out=str(tmp / "run"), max_steps=10, batch_size=4, block_size=16,
                                n_layer=1, n_head=2, n_embd=16, eval_interval=10, eval_iters=2), quiet=True)
    port = _free_port()
    fb = tmp / "feedback.jsonl"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pyengine", "serve", "--checkpoint", r["best_checkpoint"],
                             "--port", str(port), "--feedback-file", str(fb)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if _request(base + "/health")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not start: " + proc.stdout.read().decode(errors="replace"))
        time.sleep(0.2)
    yield base, fb
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_health_and_generate(server):
    base, _ = server
    status, body = _request(base + "/health")
    assert status == 200 and body["status"] == "ok" and body["model"]["vocab_size"] > 0
    status, body = _request(base + "/v1/generate", {"prompt": "hello", "max_new_tokens": 12, "seed": 1})
    assert status == 200 and len(body["completion"]) == 12 and body["tokens_per_s"] > 0
    again = _request(base + "/v1/generate", {"prompt": "hello", "max_new_tokens": 12, "seed": 1})[1]
    assert again["completion"] == body["completion"]  # seeded: reproducible


@pytest.mark.parametrize("payload,code", [
    ({"prompt": "hi", "max_new_tokens": 0}, 422),
    ({"prompt": "hi", "max_new_tokens": 100000}, 422),
    ({"prompt": "x" * 5000}, 422),
    ({"prompt": "hi", "temperature": -1}, 422),
    ({"prompt": 5}, 422),
    ({"prompt": "hi", "unknown_field": 1}, 422),
    ({"prompt": "QQQ\u2603"}, 422),  # characters outside the vocabulary
    ({"prompt": "hi", "max_new_tokens": True}, 422),  # a bool is not an integer (was taken as 1)
    ({"prompt": "hi", "max_new_tokens": "5"}, 422),
    ({"prompt": "hi", "seed": 1.5}, 422),
])
def test_bad_requests_are_4xx_and_server_keeps_serving(server, payload, code):
    base, _ = server
    status, body = _request(base + "/v1/generate", payload)
    assert status == code and "error" in body
    assert _request(base + "/health")[0] == 200


def test_malformed_and_oversized_bodies(server):
    base, _ = server
    assert _request(base + "/v1/generate", raw=b"{not json")[0] == 422
    assert _request(base + "/v1/generate", raw=b"x" * (70 * 1024))[0] == 413
    assert _request(base + "/v1/nothing", {"a": 1})[0] == 404


def test_feedback_recorded_durably_and_concurrently(server):
    base, fb = server
    def send(i):
        return _request(base + "/v1/feedback", {"prompt": f"p{i}", "completion": "c", "rating": 1 + i % 5,
                                                "corrected": "fixed" if i % 2 else None})
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(send, range(24)))
    assert all(s == 200 and b["status"] == "recorded" for s, b in results)
    lines = [json.loads(line) for line in open(fb)]
    assert sorted(r["prompt"] for r in lines) == sorted(f"p{i}" for i in range(24))
    assert _request(base + "/v1/feedback", {"prompt": "p", "completion": "c", "rating": 9})[0] == 422


def test_concurrent_generate(server):
    base, _ = server
    def gen(i):
        return _request(base + "/v1/generate", {"prompt": "hello", "max_new_tokens": 8, "seed": i})
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(gen, range(12)))
    assert all(s == 200 and len(b["completion"]) == 8 for s, b in results)
    seq = [_request(base + "/v1/generate", {"prompt": "hello", "max_new_tokens": 8, "seed": i})[1]["completion"]
           for i in range(3)]
    assert seq == [b["completion"] for _, b in results[:3]]


def _raw_http(base, request_bytes, timeout=30):
    """Send raw bytes to the server; return (status code, whole response)."""
    host, port = base.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request_bytes)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return int(data.split(b" ", 2)[1]), data


def _server_rss_kb(base):
    """Resident memory of the process listening on base's port (Linux /proc), or None."""
    port = int(base.rsplit(":", 1)[-1])
    try:
        out = subprocess.run(["ss", "-ltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        pid = int(out.split("pid=")[1].split(",")[0])
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def test_chunked_oversize_body_is_refused_without_reading_it_whole(server):
    """A chunked body (no Content-Length) used to be read whole before the 422: 200 MB grew the server by
    600 MB. It is counted as it arrives and refused with 413 once over the 64 KB limit."""
    base, _ = server
    rss0 = _server_rss_kb(base)
    chunk = b"x" * 65536
    head = (b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 160 + b"0\r\n\r\n"   # 10 MB
    try:
        status, data = _raw_http(base, head + body)
    except (BrokenPipeError, ConnectionResetError):  # the server answered and closed while we still sent
        status, data = 413, b"too large"
    assert status == 413 and b"too large" in data
    rss1 = _server_rss_kb(base)
    if rss0 is not None and rss1 is not None:
        assert rss1 - rss0 < 50_000, (rss0, rss1)
    # a small chunked body is accepted as usual
    small = json.dumps({"prompt": "hello", "max_new_tokens": 3}).encode()
    status, data = _raw_http(base, head + b"%x\r\n" % len(small) + small + b"\r\n0\r\n\r\n")
    assert status == 200, data
    assert _request(base + "/health")[0] == 200


def test_nan_temperature_is_named_as_nan(server):
    base, _ = server
    status, body = _request(base + "/v1/generate", raw=b'{"prompt": "hi", "temperature": NaN}')
    assert status == 422
    text = json.dumps(body).lower()
    assert "nan" in text or "finite" in text, body
