"""`pyengine serve`'s OpenAI-compatible routes, driven by OpenAI's own Python client (and raw HTTP where the
client hides what is checked): completions, chat, models, streaming, stop sequences, usage, error shapes,
generation ids for feedback, the admission limit (503) and the per-request time limit (504).

The servers run in this process (uvicorn in a thread on a free loopback port) on a tiny untrained GPT
exported here, so the whole file takes seconds."""
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import openai
import pytest
import uvicorn

import pyengine
from pyengine import export, serve
from pyengine.models.gpt import GPT, GPTConfig
from pyengine.text import CharTokenizer

VOCAB = "abcdefghijklmnopqrstuvwxyzSUA:., \n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pyengine.manual_seed(0)
    tok = CharTokenizer.fit(VOCAB)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    out = tmp_path_factory.mktemp("served") / "tiny"
    export.save_pretrained(model, tok, str(out))
    return str(out)


class Server:
    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.app = app
        self.base = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)
        self.client = openai.OpenAI(base_url=self.base + "/v1", api_key="unused", max_retries=0, timeout=30)

    def request(self, path, body=None, raw=None, method=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, path, body=None, **kw):
        status, data = self.request(path, body, **kw)
        return status, json.loads(data)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def srv(model_dir, tmp_path_factory):
    s = Server(serve.create_app(model_dir, str(tmp_path_factory.mktemp("fb") / "feedback.jsonl")))
    yield s
    s.stop()


def _events(body):
    """The data lines of a server-sent-event body: decoded JSON objects, and "[DONE]" as such."""
    text = body.decode()
    assert text.endswith("\n\n")
    out = []
    for event in text.split("\n\n")[:-1]:
        assert event.startswith("data: "), event
        data = event[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _assert_error(body, status_kind="invalid_request_error"):
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["type"] == status_kind
    return err


def test_models(srv):
    models = srv.client.models.list()
    assert [m.id for m in models.data] == ["tiny"] and models.data[0].object == "model"
    assert srv.client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        srv.client.models.retrieve("gpt-4")


def test_completion_shape_usage_and_seed(srv):
    r = srv.client.completions.create(model="tiny", prompt="hello", max_tokens=9, seed=7, temperature=1.0)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == "tiny"
    (c,) = r.choices
    assert c.index == 0 and c.finish_reason == "length" and len(c.text) == 9  # a character per token
    assert set(c.text) <= set(VOCAB)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 9, 14)
    again = srv.client.completions.create(model="tiny", prompt="hello", max_tokens=9, seed=7, temperature=1.0)
    assert again.choices[0].text == c.text and again.id != r.id
    # the same draw as pyengine's own route with the same seed
    status, gen = srv.json("/v1/generate", {"prompt": "hello", "max_new_tokens": 9, "seed": 7, "temperature": 1.0})
    assert status == 200 and gen["completion"] == c.text and gen["id"].startswith("gen-")
    greedy = [srv.client.completions.create(model="tiny", prompt="abc", max_tokens=6, temperature=0).choices[0].text
              for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_n_and_prompt_lists(srv):
    r = srv.client.completions.create(model="tiny", prompt=["ab", "cde"], n=3, max_tokens=4, seed=1)
    assert [c.index for c in r.choices] == list(range(6))
    assert all(len(c.text) == 4 for c in r.choices)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 24)
    assert len({c.text for c in r.choices}) > 1  # n draws, not one copied
    tokens = CharTokenizer.fit(VOCAB).encode("ab").tolist()
    by_ids = srv.client.completions.create(model="tiny", prompt=tokens, max_tokens=4, seed=1, n=3)
    assert [c.text for c in by_ids.choices] == [c.text for c in r.choices[:3]]


def test_stop_sequences(srv):
    full = srv.client.completions.create(model="tiny", prompt="the", max_tokens=40, seed=3).choices[0].text
    stop = full[10:12]
    cut = full.find(stop)
    r = srv.client.completions.create(model="tiny", prompt="the", max_tokens=40, seed=3, stop=stop)
    assert r.choices[0].text == full[:cut] and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == cut + len(stop)  # generation stopped once the stop sequence was out
    r = srv.client.completions.create(model="tiny", prompt="the", max_tokens=40, seed=3,
                                      stop=["\u2603never", full[20:23]])
    assert r.choices[0].text == full[:full.find(full[20:23])] and r.choices[0].finish_reason == "stop"
    r = srv.client.completions.create(model="tiny", prompt="the", max_tokens=40, seed=3, stop="\u2603never")
    assert r.choices[0].text == full and r.choices[0].finish_reason == "length"


def test_streaming_completion(srv):
    full = srv.client.completions.create(model="tiny", prompt="the", max_tokens=30, seed=5)
    stop = full.choices[0].text[15:18]
    whole = srv.client.completions.create(model="tiny", prompt="the", max_tokens=30, seed=5, stop=stop, n=2)
    chunks = list(srv.client.completions.create(model="tiny", prompt="the", max_tokens=30, seed=5, stop=stop, n=2,
                                                stream=True))
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("cmpl-")
    for i in range(2):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == i]
        assert "".join(ch.text for ch in mine) == whole.choices[i].text  # a stop sequence is never sent in part
        assert [ch.finish_reason for ch in mine][-1] == whole.choices[i].finish_reason
        assert all(ch.finish_reason is None for ch in mine[:-1])
    # raw: data events ending in [DONE]; with include_usage a last chunk carries usage
    status, body = srv.request("/v1/completions", {"model": "tiny", "prompt": "ab", "max_tokens": 5, "seed": 2,
                                                   "stream": True, "stream_options": {"include_usage": True}})
    events = _events(body)
    assert status == 200 and events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 5,
                                                                   "total_tokens": 7}


def test_chat(srv):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = srv.client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, seed=4)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    (c,) = r.choices
    assert c.message.role == "assistant" and c.finish_reason in ("stop", "length")
    assert all(s not in c.message.content for s in serve.CHAT_STOP)
    prompt = serve.render_chat([("system", "be brief"), ("user", "hi")])
    assert prompt == "System: be brief\nUser: hi\nAssistant:"
    assert r.usage.prompt_tokens == len(prompt)
    stream = list(srv.client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, seed=4,
                                                     stream=True))
    assert stream[0].choices[0].delta.role == "assistant" and stream[0].object == "chat.completion.chunk"
    assert "".join(ch.choices[0].delta.content or "" for ch in stream) == c.message.content
    assert stream[-1].choices[0].finish_reason == c.finish_reason
    parts = srv.client.chat.completions.create(model="tiny", max_tokens=12, seed=4, messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert parts.choices[0].message.content == c.message.content


def test_chat_stops_at_the_next_turn(srv):
    """The reply ends where the model starts a new turn: the engine cuts at CHAT_STOP like any stop."""
    engine = srv.app.state.engine
    tok = CharTokenizer.fit(VOCAB)

    class Scripted:  # a model that writes a fixed text, to see where the engine stops it
        def __init__(self, text):
            self.ids = tok.encode(text)

        def generate_tokens(self, rows, max_tokens, *args, **kw):
            for t in self.ids[:max_tokens]:
                yield np.full(rows.shape[0], t)

    real = engine.model
    try:
        engine.model = Scripted(" fine, and you.\nUser: good\nAssistant: ok")
        events = list(engine.run(np.zeros(1, np.int64), 1, 100, {"temperature": 1.0, "top_k": None, "top_p": None},
                                 list(serve.CHAT_STOP), None,
                                 time.monotonic() + 10))
    finally:
        engine.model = real
    assert "".join(e[1] for e in events) == " fine, and you." and events[-1][2] == "stop"


@pytest.mark.parametrize("kwargs,param", [
    ({"temperature": -1}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"n": 0}, "n"),
    ({"n": 99}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 100000}, "max_tokens"),
    ({"top_p": 0}, "top_p"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": ""}, "stop"),
    ({"prompt": "QQ\u2603"}, "prompt"),            # characters outside the vocabulary
    ({"prompt": [999]}, "prompt"),                  # token ids outside the vocabulary
    ({"prompt": []}, "prompt"),
    ({"prompt": "x" * 3000}, "prompt"),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ({"extra_body": {"seed": "5"}}, "seed"),        # strict: a string is not a number
    ({"frequency_penalty": 0.5}, "frequency_penalty"),  # not implemented: refused unless a no-op
    ({"logprobs": 2}, "logprobs"),
    ({"echo": True}, "echo"),
    ({"logit_bias": {"3": 1.0}}, "logit_bias"),
])
def test_bad_completion_requests_are_400_in_openai_shape(srv, kwargs, param):
    args = {"model": "tiny", "prompt": "ab", "max_tokens": 3} | kwargs
    with pytest.raises(openai.BadRequestError) as e:
        srv.client.completions.create(**args)
    err = _assert_error(e.value.response.json())
    assert err["param"] and err["param"].startswith(param), err
    assert srv.client.completions.create(model="tiny", prompt="ab", max_tokens=2).choices[0].text  # still serving


def test_unimplemented_parameters_are_accepted_at_their_no_op_values(srv):
    """Tools built on the client send OpenAI's defaults for parameters this server lacks."""
    args = dict(model="tiny", prompt="ab", max_tokens=3, seed=1)
    plain = srv.client.completions.create(**args).choices[0].text
    noop = srv.client.completions.create(**args, frequency_penalty=0, presence_penalty=0.0, logit_bias={},
                                         logprobs=None, echo=False, best_of=1)
    assert noop.choices[0].text == plain
    chat = dict(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3, seed=1)
    assert srv.client.chat.completions.create(**chat, logprobs=False, top_logprobs=0).choices[0].message.content \
        == srv.client.chat.completions.create(**chat).choices[0].message.content
    with pytest.raises(openai.BadRequestError) as e:
        srv.client.chat.completions.create(**chat, logprobs=True)
    assert _assert_error(e.value.response.json())["code"] == "unsupported_parameter"


def test_bad_chat_requests(srv):
    for messages in ([], [{"role": "tool", "content": "x"}], [{"role": "user"}], [{"role": "user", "content": 5}],
                     [{"role": "user", "content": "\u2603"}]):
        with pytest.raises(openai.BadRequestError) as e:
            srv.client.chat.completions.create(model="tiny", messages=messages)
        assert _assert_error(e.value.response.json())["param"].startswith("messages")
    with pytest.raises(openai.NotFoundError) as e:
        srv.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert _assert_error(e.value.response.json())["code"] == "model_not_found"


def test_errors_have_one_shape_on_every_route(srv):
    status, body = srv.json("/v1/nothing", {"a": 1})
    assert status == 404 and _assert_error(body)["code"] == "not_found"
    status, body = srv.json("/v1/completions", method="GET")
    assert status == 405 and _assert_error(body)["code"] == "method_not_allowed"
    status, body = srv.json("/v1/completions", raw=b"{not json")
    assert status == 400 and _assert_error(body)
    status, body = srv.json("/v1/completions", raw=b'{"prompt": "a", "temperature": NaN}')
    assert status == 400 and "finite" in _assert_error(body)["message"]
    status, body = srv.json("/v1/chat/completions", raw=b"x" * (70 * 1024))
    assert status == 413 and _assert_error(body)["code"] == "request_too_large"
    # pyengine's own routes: the same shape, with 422 for invalid input as before
    status, body = srv.json("/v1/generate", {"prompt": "ab", "max_new_tokens": 0})
    assert status == 422 and _assert_error(body)["param"] == "max_new_tokens"
    status, body = srv.json("/v1/feedback", {"rating": 3})
    assert status == 422 and _assert_error(body)
    assert srv.json("/health")[0] == 200


def test_feedback_cites_a_generation_by_id(srv):
    fb = srv.app.state.feedback_file
    r = srv.client.completions.create(model="tiny", prompt="ab", max_tokens=5, n=2, seed=9)
    status, body = srv.json("/v1/feedback", {"id": r.id, "choice": 1, "rating": 2, "corrected": "ab fixed"})
    assert status == 200 and body["generation_id"] == r.id
    record = json.loads(open(fb).read().splitlines()[-1])
    assert (record["prompt"], record["completion"], record["corrected"]) == ("ab", r.choices[1].text, "ab fixed")
    chat = srv.client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=4, seed=1)
    status, _ = srv.json("/v1/feedback", {"id": chat.id, "rating": 5})
    record = json.loads(open(fb).read().splitlines()[-1])
    assert status == 200 and record["prompt"] == "User: hi\nAssistant:" and record["completion"] == \
        chat.choices[0].message.content
    gen = srv.json("/v1/generate", {"prompt": "ab", "max_new_tokens": 3})[1]
    assert srv.json("/v1/feedback", {"id": gen["id"], "rating": 4})[0] == 200
    streamed = list(srv.client.completions.create(model="tiny", prompt="ab", max_tokens=3, stream=True))
    assert srv.json("/v1/feedback", {"id": streamed[0].id, "rating": 4})[0] == 200
    status, body = srv.json("/v1/feedback", {"id": "cmpl-unknown", "rating": 4})
    assert status == 404 and _assert_error(body)["code"] == "generation_not_found"
    assert srv.json("/v1/feedback", {"id": r.id, "choice": 2, "rating": 4})[0] == 422
    assert srv.json("/v1/feedback", {"id": r.id, "completion": "other", "rating": 4})[0] == 422
    # the old form (prompt and completion given) still works
    assert srv.json("/v1/feedback", {"prompt": "p", "completion": "c", "rating": 4})[0] == 200


def test_generation_store_is_bounded(model_dir, tmp_path):
    s = Server(serve.create_app(model_dir, str(tmp_path / "fb.jsonl"), generation_store=2))
    try:
        ids = [s.client.completions.create(model="tiny", prompt="a", max_tokens=1).id for _ in range(3)]
        assert s.json("/v1/feedback", {"id": ids[0], "rating": 4})[0] == 404
        assert all(s.json("/v1/feedback", {"id": i, "rating": 4})[0] == 200 for i in ids[1:])
    finally:
        s.stop()


def test_busy_server_answers_503_and_recovers(model_dir, tmp_path):
    s = Server(serve.create_app(model_dir, str(tmp_path / "fb.jsonl"), max_concurrent=1, max_queue=0,
                                request_timeout=10))
    lock = s.app.state.engine.lock
    try:
        lock.acquire()  # the model is "busy": the first request takes the one slot and waits for the model
        first = []
        t = threading.Thread(target=lambda: first.append(s.json("/v1/completions", {"prompt": "a", "max_tokens": 3})))
        t.start()
        deadline = time.time() + 10
        while s.json("/health")[1]["load"]["generating"] == 0:
            assert time.time() < deadline
            time.sleep(0.01)
        with pytest.raises(openai.InternalServerError) as e:  # 503: no slot and no room to wait
            s.client.completions.create(model="tiny", prompt="a", max_tokens=3)
        assert e.value.status_code == 503 and _assert_error(e.value.response.json(), "server_error")["code"] == \
            "server_busy"
        lock.release()
        t.join(10)
        assert first[0][0] == 200 and len(first[0][1]["choices"][0]["text"]) == 3
        assert s.client.completions.create(model="tiny", prompt="a", max_tokens=3).choices[0].text
    finally:
        if lock.locked():
            lock.release()
        s.stop()


def test_time_limit_504_and_queue_wait_503(model_dir, tmp_path):
    s = Server(serve.create_app(model_dir, str(tmp_path / "fb.jsonl"), max_concurrent=1, max_queue=1,
                                request_timeout=0.5))
    lock = s.app.state.engine.lock
    try:
        engine = s.app.state.engine
        slot = engine.admission.enter(time.monotonic() + 10)  # the one slot is taken: a request queues...
        t0 = time.monotonic()
        status, body = s.json("/v1/completions", {"prompt": "a", "max_tokens": 3})
        assert status == 503 and body["error"]["code"] == "server_busy" and time.monotonic() - t0 >= 0.45
        slot.release()
        lock.acquire()  # ...and with a slot but the model held past the limit: 504
        status, body = s.json("/v1/completions", {"prompt": "a", "max_tokens": 3})
        assert status == 504 and _assert_error(body, "server_error")["code"] == "timeout"
        # streamed: the status is already 200, so the time limit arrives as an error event, then [DONE]
        status, body = s.request("/v1/completions", {"prompt": "a", "max_tokens": 3, "stream": True})
        events = _events(body)
        assert status == 200 and events[-1] == "[DONE]" and events[-2]["error"]["code"] == "timeout"
        with pytest.raises(openai.APIError):
            list(s.client.completions.create(model="tiny", prompt="a", max_tokens=3, stream=True))
        lock.release()
        assert s.client.completions.create(model="tiny", prompt="a", max_tokens=3).choices[0].finish_reason == \
            "length"
    finally:
        if lock.locked():
            lock.release()
        s.stop()


def test_client_leaving_a_stream_frees_its_slot(model_dir, tmp_path):
    s = Server(serve.create_app(model_dir, str(tmp_path / "fb.jsonl"), max_concurrent=1, max_queue=0))
    engine = s.app.state.engine
    lock, steps, real = engine.lock, [], engine.model.generate_tokens

    def counted(*args, **kw):
        for t in real(*args, **kw):
            steps.append(1)
            yield t

    engine.model.generate_tokens = counted
    try:
        lock.acquire()
        host, port = s.base.rsplit("/", 1)[-1].split(":")
        body = json.dumps({"prompt": "a", "max_tokens": 500, "stream": True}).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        lock.release()  # the client has gone: the next token's send fails and the stream ends
        deadline = time.time() + 15
        while True:
            status, _ = s.request("/v1/completions", {"prompt": "a", "max_tokens": 2})
            if status == 200:
                break
            assert status == 503 and time.time() < deadline, "the slot of a closed stream was never freed"
            time.sleep(0.05)
        assert s.json("/health")[1]["load"]["generating"] == 0
        assert len(steps) < 100  # the abandoned generation stopped (it asked for 500 tokens)
    finally:
        del engine.model.generate_tokens
        if lock.locked():
            lock.release()
        s.stop()


def test_api_key(model_dir, tmp_path):
    s = Server(serve.create_app(model_dir, str(tmp_path / "fb.jsonl"), api_key="s3cret"))
    try:
        good = openai.OpenAI(base_url=s.base + "/v1", api_key="s3cret", max_retries=0)
        assert good.completions.create(model="tiny", prompt="a", max_tokens=2).choices[0].text
        assert [m.id for m in good.models.list().data] == ["tiny"]
        with pytest.raises(openai.AuthenticationError) as e:
            s.client.completions.create(model="tiny", prompt="a", max_tokens=2)  # the wrong key
        assert _assert_error(e.value.response.json())["code"] == "invalid_api_key"
        for path, body in (("/v1/models", None), ("/v1/generate", {"prompt": "a"}),
                           ("/v1/feedback", {"prompt": "p", "completion": "c", "rating": 4})):
            status, body = s.json(path, body)
            assert status == 401 and _assert_error(body)["code"] == "invalid_api_key"
        assert s.json("/health")[0] == 200  # for load balancers and probes
    finally:
        s.stop()
    with pytest.raises(ValueError, match="api_key"):
        serve.create_app(model_dir, api_key="")
