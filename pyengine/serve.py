"""An HTTP service for a trained language model (FastAPI + uvicorn: ``pip install pyengine[serve]``).

OpenAI-compatible routes (the API that OpenAI's clients, LangChain & co. speak; llama.cpp and vLLM serve it):

    GET  /v1/models                  -> {"object": "list", "data": [{"id": MODEL, "object": "model", ...}]}
    GET  /v1/models/{model}
    POST /v1/completions             {"model", "prompt": str | [str] | [int] | [[int]], "max_tokens" (16),
                                      "temperature" (1.0), "top_p" (1.0), "n" (1), "stop": str | [str],
                                      "seed", "stream", "stream_options": {"include_usage"}, "user",
                                      "top_k" (an extension, as vLLM's); frequency_penalty,
                                      presence_penalty, logit_bias, logprobs, echo, best_of, suffix only
                                      at their no-op values (0, {}, false, 1, "")}
    POST /v1/chat/completions        {"model", "messages": [{"role", "content"}], "max_tokens" (128) or
                                      "max_completion_tokens", and the sampling fields above}

Their answers have OpenAI's shapes: an id ("cmpl-..." / "chatcmpl-..."), ``choices`` with ``finish_reason``
"stop" (a stop sequence was generated; it is cut from the text, as OpenAI does) or "length" (max_tokens),
and ``usage`` {"prompt_tokens", "completion_tokens", "total_tokens"}. With ``"stream": true`` the answer is
server-sent events, ``data: {chunk}\\n\\n`` per piece of text, ending with ``data: [DONE]\\n\\n``.

Chat messages are rendered for a character/byte-level GPT by CHAT_TEMPLATE (one line per message,
``System: ``/``User: ``/``Assistant: `` + content, then ``Assistant:`` for the model to continue), and the
reply ends where the model starts a new turn (CHAT_STOP), besides the request's own stop sequences.

pyengine's own routes:

    POST /v1/generate   {"prompt": str, "max_new_tokens": int, "temperature": float, "top_k": int|null,
                         "top_p": float|null, "seed": int|null}
                     -> {"id": "gen-...", "completion": str, "tokens": int, "tokens_per_s": float, "model": {...}}
    POST /v1/feedback   {"id": a generation's id, "choice": int (0), "rating": int 1..5, "corrected": str|null}
                        or {"prompt": str, "completion": str, "rating", "corrected"}
                     -> {"status": "recorded", "id": str, "generation_id": str|null}
    GET  /health     -> {"status": "ok", "model": {...}, "load": {...}}

The last ``generation_store`` generations (all routes) are kept by id, so feedback can cite one instead of
repeating its text. Every error, on every route, has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``; invalid requests get 400 on the OpenAI routes (as
OpenAI answers) and 422 on pyengine's own (as they always have), an unknown route 404, a body over 64 KB 413.

With ``api_key`` (``pyengine serve --api-key KEY``, or the PYENGINE_API_KEY environment variable) every
route but /health needs ``Authorization: Bearer KEY``, as OpenAI's API does; without one, anyone who can reach
the port may use it (the default address is loopback only).

Load: at most ``max_concurrent`` generations run at once; they take turns on the model one token step at a
time (a lock around each step: the kernels already use every core, and each request has its own KV cache),
so a slow streaming reader holds nobody up. Up to ``max_queue`` more wait for a free slot; beyond that a
request is answered 503 at once. Each request has ``request_timeout`` seconds from arrival: a request still
waiting for a slot then gets 503, one still generating 504 (in a stream: an error event, then [DONE]).
Feedback lines are written with flush + fsync under a lock, so concurrent requests never interleave a
line and an acknowledged record survives a crash.
"""
import collections
import contextlib
import hmac
import json
import os
import threading
import time
import uuid

import numpy as np

from . import lm

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 512
MAX_BODY_BYTES = 64 * 1024
MAX_FEEDBACK_CHARS = 8000
MAX_CHOICES = 8            # n
MAX_PROMPTS = 16           # prompts in one /v1/completions request
MAX_STOP = 4               # stop sequences (OpenAI's limit)
MAX_MESSAGES = 64
CHAT_DEFAULT_MAX_TOKENS = 128

# The chat template. A character- or byte-level GPT has no special tokens, so a conversation is rendered as a
# plain transcript, one message per line, which such a model can learn from its training text:
#     System: You are terse.
#     User: Who wrote Hamlet?
#     Assistant: Shakespeare.
#     User: When?
#     Assistant:
# ("developer" messages are rendered as "System"). The reply is what the model writes after the final
# "Assistant:", up to the first CHAT_STOP: the point where it starts the next turn.
CHAT_ROLES = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}
CHAT_STOP = ("\nUser:", "\nAssistant:", "\nSystem:")


def render_chat(messages):
    """The prompt text for ``messages`` [(role, content)], by the chat template above."""
    lines = [f"{CHAT_ROLES[role]}: {content}" for role, content in messages]
    return "\n".join(lines + ["Assistant:"])


class ServiceError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(self, status, message, type="invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self):
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message, type="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class Admission:
    """At most ``concurrent`` requests generate at once, at most ``queue`` more wait; beyond that: 503."""

    def __init__(self, concurrent, queue):
        if concurrent < 1 or queue < 0:
            raise ValueError(f"serve: max_concurrent must be >= 1 and max_queue >= 0, got {concurrent}, {queue}")
        self.concurrent, self.queue = concurrent, queue
        self.running = self.waiting = 0
        self.cond = threading.Condition()

    def enter(self, deadline):
        """A slot (call its release() once done), or ServiceError 503."""
        with self.cond:
            if self.running >= self.concurrent:
                if self.waiting >= self.queue:
                    raise ServiceError(503, f"the server is busy ({self.running} requests generating, "
                                       f"{self.waiting} waiting, the limit); retry later",
                                       "server_error", code="server_busy")
                self.waiting += 1
                try:
                    while self.running >= self.concurrent:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise ServiceError(503, "the server is busy: no generation slot came free within the "
                                               "request time limit; retry later", "server_error",
                                               code="server_busy")
                        self.cond.wait(left)
                finally:
                    self.waiting -= 1
            self.running += 1
        return _Slot(self)

    def load(self):
        with self.cond:
            return {"generating": self.running, "waiting": self.waiting, "max_concurrent": self.concurrent,
                    "max_queue": self.queue}


class _Slot:
    def __init__(self, admission):
        self.admission, self.held = admission, True

    def release(self):
        with self.admission.cond:
            if self.held:
                self.held = False
                self.admission.running -= 1
                self.admission.cond.notify()


def _held_back(text, stops):
    """How many characters at the end of ``text`` must not be sent yet: a possible start of a stop sequence,
    or replacement characters that may be a multi-byte character still arriving (byte-level models)."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    tail = len(text) - len(text.rstrip("\ufffd"))
    return max(hold, min(tail, 3))


class Engine:
    """Sampling with stop sequences, limits and deadlines, one token step at a time under the model lock."""

    def __init__(self, model, tokenizer, admission, request_timeout):
        self.model, self.tokenizer = model, tokenizer
        self.admission, self.request_timeout = admission, request_timeout
        self.lock = threading.Lock()

    def encode(self, text, param, status=400):
        try:
            return np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        except ValueError:
            known = getattr(self.tokenizer, "stoi", None)
            unknown = sorted({c for c in text if known is not None and c not in known})
            raise ServiceError(status, f"{param} has characters outside the model's vocabulary: "
                               f"{''.join(unknown)[:50]!r}", param=param, code="unknown_characters") from None

    def check_ids(self, ids, param):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.tokenizer.vocab_size):
            raise ServiceError(400, f"{param}: token ids must be in [0, {self.tokenizer.vocab_size})", param=param)
        return ids

    def run(self, prompt_ids, n, max_tokens, sampling, stops, generator, deadline, first_index=0):
        """Yield (choice index, text delta, finish_reason or None, tokens generated) as text becomes safe to
        send: ``n`` choices of one prompt, drawn together as a batch of n rows."""
        ids = prompt_ids if prompt_ids.size else np.zeros(1, np.int64)  # an empty prompt starts at token 0
        rows = np.tile(ids[None, :], (n, 1))
        tokens = [[] for _ in range(n)]
        sent = [0] * n
        done = [False] * n
        steps = self.model.generate_tokens(rows, max_tokens, sampling["temperature"], sampling["top_k"],
                                           sampling["top_p"], generator=generator)
        try:
            while not all(done):
                left = deadline - time.monotonic()
                if left <= 0 or not self.lock.acquire(timeout=left):
                    raise ServiceError(504, f"the request ran past its time limit ({self.request_timeout:g} s)",
                                       "server_error", code="timeout")
                try:
                    nxt = next(steps, None)
                finally:
                    self.lock.release()
                for r in range(n):
                    if done[r]:
                        continue
                    if nxt is not None:
                        tokens[r].append(int(nxt[r]))
                    text = self.tokenizer.decode(tokens[r])
                    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
                    if cuts:
                        end, finish = min(cuts), "stop"
                    elif nxt is None:
                        end, finish = len(text), "length"
                    else:
                        end, finish = len(text) - _held_back(text, stops), None
                    if end > sent[r] or finish:
                        yield first_index + r, text[sent[r]:max(end, sent[r])], finish, len(tokens[r])
                        sent[r] = max(end, sent[r])
                    done[r] = finish is not None
        finally:
            steps.close()


def _new_id(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class GenerationStore:
    """The last ``size`` generations by id, each a list of (prompt, completion) per choice."""

    def __init__(self, size):
        self.size = size
        self.items = collections.OrderedDict()
        self.lock = threading.Lock()

    def put(self, gid, pairs):
        with self.lock:
            self.items[gid] = pairs
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def get(self, gid):
        with self.lock:
            return self.items.get(gid)


def _default_model_name(checkpoint):
    path = os.path.abspath(checkpoint)
    if os.path.isdir(path):
        return os.path.basename(path.rstrip(os.sep)) or "pyengine-gpt"
    return os.path.splitext(os.path.basename(path))[0] or "pyengine-gpt"


OPENAI_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models")


def create_app(checkpoint, feedback_file=None, model_name=None, max_concurrent=4, max_queue=16,
               request_timeout=60.0, generation_store=1024, api_key=None):
    """The FastAPI application serving ``checkpoint`` (a training checkpoint, or a folder or model.safetensors
    written by ``pyengine export``). With ``api_key``, every route but /health needs the header
    ``Authorization: Bearer <api_key>`` (what OpenAI's clients send), else 401."""
    try:
        from typing import Literal

        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, StreamingResponse
        from pydantic import BaseModel, Field
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("pyengine serve needs FastAPI and uvicorn: pip install 'pyengine[serve]'") from e
    if not (isinstance(request_timeout, (int, float)) and request_timeout > 0):
        raise ValueError(f"serve: request_timeout must be a number of seconds > 0, got {request_timeout!r}")

    model, tokenizer, ck = lm.load_checkpoint(checkpoint)
    if feedback_file is None:
        where = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
        feedback_file = os.path.join(where, "feedback.jsonl")
    model_name = model_name or _default_model_name(checkpoint)
    created = int(time.time())
    feedback_lock = threading.Lock()
    engine = Engine(model, tokenizer, Admission(max_concurrent, max_queue), float(request_timeout))
    store = GenerationStore(generation_store)
    info = {"checkpoint": os.path.abspath(checkpoint), "name": model_name, "step": int(ck.get("step", 0) or 0),
            "vocab_size": tokenizer.vocab_size, "block_size": model.config.block_size,
            "parameters": model.num_parameters()}

    # strict: JSON true is not the integer 1, "5" is not 5; allow_inf_nan=False: NaN is refused as NaN
    strict = {"extra": "forbid", "strict": True}

    class GenerateRequest(BaseModel):
        model_config = strict
        prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
        max_new_tokens: int = Field(100, ge=1, le=MAX_NEW_TOKENS)
        temperature: float = Field(0.8, ge=0.0, le=5.0, allow_inf_nan=False)
        top_k: int | None = Field(None, ge=1)
        top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
        seed: int | None = Field(None, ge=0, le=2 ** 63 - 1)

    class FeedbackRequest(BaseModel):
        model_config = strict
        id: str | None = Field(None, max_length=100)
        choice: int = Field(0, ge=0)
        prompt: str | None = Field(None, max_length=MAX_FEEDBACK_CHARS)
        completion: str | None = Field(None, max_length=MAX_FEEDBACK_CHARS)
        rating: int = Field(..., ge=1, le=5)
        corrected: str | None = Field(None, max_length=MAX_FEEDBACK_CHARS)

    class StreamOptions(BaseModel):
        model_config = strict
        include_usage: bool = False

    class Sampling(BaseModel):
        model_config = strict
        model: str | None = Field(None, max_length=200)
        temperature: float | None = Field(1.0, ge=0.0, le=2.0, allow_inf_nan=False)
        top_p: float | None = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
        top_k: int | None = Field(None, ge=1)
        n: int | None = Field(1, ge=1, le=MAX_CHOICES)
        stop: str | list[str] | None = None
        seed: int | None = Field(None, ge=-2 ** 63, le=2 ** 64 - 1)
        stream: bool | None = False
        stream_options: StreamOptions | None = None
        user: str | None = Field(None, max_length=256)
        # OpenAI parameters this server does not implement: accepted at their no-op values (tools built on the
        # client send them so), refused otherwise (check_unsupported)
        frequency_penalty: float | None = Field(None, allow_inf_nan=False)
        presence_penalty: float | None = Field(None, allow_inf_nan=False)
        logit_bias: dict[str, float] | None = Field(None, max_length=300)
        logprobs: bool | int | None = None

    class CompletionRequest(Sampling):
        prompt: str | list[str] | list[int] | list[list[int]] = ""
        max_tokens: int | None = Field(16, ge=1, le=MAX_NEW_TOKENS)
        echo: bool | None = None
        best_of: int | None = None
        suffix: str | None = Field(None, max_length=MAX_PROMPT_CHARS)

    class TextPart(BaseModel):
        model_config = strict
        type: Literal["text"]
        text: str

    class Message(BaseModel):
        model_config = strict
        role: Literal["system", "developer", "user", "assistant"]
        content: str | list[TextPart]
        name: str | None = Field(None, max_length=64)

    class ChatRequest(Sampling):
        messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES)
        max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
        max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
        top_logprobs: int | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Blocking work runs on anyio's worker threads (40 by default): every admitted or queued request may
        # hold one while it waits, so there are enough for all of them and for the quick routes besides.
        import anyio.to_thread
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, max_concurrent + max_queue + 16)
        yield

    app = FastAPI(title="pyengine language model", version="2", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("serve: api_key must be a non-empty string")
        app.add_middleware(ApiKey, key=api_key)

    def openai_route(path):
        return path.startswith(OPENAI_ROUTES)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc):
        parts, param = [], None
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())[1:]]
            field = ".".join(loc)
            if e.get("type") == "json_invalid":
                field = ""
            param = param or field or None
            parts.append(f"{field}: {e.get('msg')}" if field else str(e.get("msg")))
        message = "invalid request: " + "; ".join(parts[:5]) + (f" (and {len(parts) - 5} more)"
                                                                  if len(parts) > 5 else "")
        return JSONResponse(error_body(message, param=param, code="invalid_value"),
                            status_code=400 if openai_route(request.url.path) else 422)

    @app.exception_handler(ServiceError)
    async def service_error(request, exc):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        if exc.status_code == 404:
            message, code = f"unknown route: {request.method} {request.url.path}", "not_found"
        elif exc.status_code == 405:
            message, code = f"{request.method} is not allowed on {request.url.path}", "method_not_allowed"
        else:
            message, code = str(exc.detail), None
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error_body(message, kind, code=code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request, exc):  # the request fails, the service keeps serving
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error",
                                       code="internal_error"), status_code=500)

    # ------------------------------------------------------------------ shared machinery

    def check_model(name):
        if name is not None and name != model_name:
            raise ServiceError(404, f"the model {name!r} does not exist; this server serves {model_name!r} "
                               "(GET /v1/models)", param="model", code="model_not_found")

    no_ops = {"frequency_penalty": (0,), "presence_penalty": (0,), "logit_bias": ({},), "logprobs": (False, 0),
              "echo": (False,), "best_of": (1,), "suffix": ("",), "top_logprobs": (0,)}

    def check_unsupported(req):
        for name, allowed in no_ops.items():
            value = getattr(req, name, None)
            no_op = (value is False and False in allowed) if isinstance(value, bool) else value in allowed
            if value is not None and not no_op:
                raise ServiceError(400, f"{name} is not supported by this server (only {allowed[0]!r} or null)",
                                   param=name, code="unsupported_parameter")

    def sampling_of(req):
        check_unsupported(req)
        temperature = 1.0 if req.temperature is None else req.temperature
        top_p = None if req.top_p is None or req.top_p >= 1.0 else req.top_p
        return {"temperature": temperature, "top_p": top_p, "top_k": req.top_k}

    def stops_of(req, extra=()):
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stops) > MAX_STOP:
            raise ServiceError(400, f"stop: at most {MAX_STOP} sequences, got {len(stops)}", param="stop")
        if any(not s or len(s) > 200 for s in stops):
            raise ServiceError(400, "stop: every sequence must hold 1 to 200 characters", param="stop")
        return stops + [s for s in extra if s not in stops]

    def generator_of(seed):
        from .random import Generator
        return Generator().manual_seed(seed % 2 ** 64) if seed is not None else None

    def admit():
        deadline = time.monotonic() + engine.request_timeout
        return engine.admission.enter(deadline), deadline

    def completion_prompts(req):
        p = req.prompt
        if isinstance(p, str):
            items = [p]
        elif not p:
            raise ServiceError(400, "prompt: an empty list", param="prompt")
        elif isinstance(p[0], int):
            items = [p]
        else:
            items = list(p)
        if len(items) > MAX_PROMPTS:
            raise ServiceError(400, f"prompt: at most {MAX_PROMPTS} prompts in one request", param="prompt")
        out = []
        for item in items:
            if isinstance(item, str):
                if len(item) > MAX_PROMPT_CHARS:
                    raise ServiceError(400, f"prompt: at most {MAX_PROMPT_CHARS} characters, got {len(item)}",
                                       param="prompt")
                out.append((item, engine.encode(item, "prompt")))
            else:
                ids = engine.check_ids(item, "prompt")
                out.append((tokenizer.decode(ids), ids))
        return out

    def generate_all(prompts, n, max_tokens, sampling, stops, seed, deadline):
        """Yield run events over every prompt: choice index = prompt index * n + choice."""
        generator = generator_of(seed)
        for p, (_, ids) in enumerate(prompts):
            yield from engine.run(ids, n, max_tokens, sampling, stops, generator, deadline, first_index=p * n)

    def collect(events, count):
        texts, finish, used = [""] * count, [None] * count, [0] * count
        for i, delta, fin, ntok in events:
            texts[i] += delta
            finish[i] = fin or finish[i]
            used[i] = ntok
        return texts, finish, used

    def usage(prompts, used):
        prompt_tokens = sum(int(ids.size) for _, ids in prompts)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": int(sum(used)),
                "total_tokens": prompt_tokens + int(sum(used))}

    def sse(obj):
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def stream(gid, prompts, n, events, slot, chunk, include_usage):
        """The server-sent events of a streamed answer; ``chunk(index, delta, finish)`` shapes one event."""
        texts, used = [""] * (len(prompts) * n), [0] * (len(prompts) * n)
        try:
            yield from chunk(None, None, None)  # an opening event, where the route has one
            for i, delta, fin, ntok in events:
                texts[i] += delta
                used[i] = ntok
                yield from chunk(i, delta, fin)
            store.put(gid, [(prompts[i // n][0], texts[i]) for i in range(len(texts))])
            if include_usage:
                yield from chunk(None, None, None, usage(prompts, used))
        except ServiceError as e:
            yield sse(e.body())
        except Exception as e:  # noqa: BLE001 - reported in the stream, which can no longer change its status
            yield sse(error_body(f"internal error: {type(e).__name__}", "server_error", code="internal_error"))
        finally:
            slot.release()
        yield "data: [DONE]\n\n"

    class ClosingStream(StreamingResponse):
        """A stream whose generator is closed (and slot released) as soon as the response ends, the client's
        leaving included: Starlette leaves an abandoned body iterator to the garbage collector (seconds)."""

        def __init__(self, events, slot):
            import anyio

            async def body():
                try:
                    while (chunk := await anyio.to_thread.run_sync(next, events, None)) is not None:
                        yield chunk
                finally:
                    events.close()  # not running here: to_thread waits for next() to return

            super().__init__(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            self.slot = slot

        async def stream_response(self, send):
            try:
                await super().stream_response(send)
            finally:
                await self.body_iterator.aclose()
                self.slot.release()

    def streaming_response(events, slot):
        return ClosingStream(events, slot)

    # ------------------------------------------------------------------ routes

    @app.get("/health")
    def health():
        return {"status": "ok", "model": info, "load": engine.admission.load()}

    def model_card():
        return {"id": model_name, "object": "model", "created": created, "owned_by": "pyengine",
                "context_length": model.config.block_size, "vocab_size": tokenizer.vocab_size,
                "tokenizer": getattr(tokenizer, "kind", None)}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    def model_info(name: str):
        check_model(name)
        return model_card()

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        check_model(req.model)
        prompts = completion_prompts(req)
        n, stops, sampling = req.n or 1, stops_of(req), sampling_of(req)
        max_tokens = req.max_tokens or 16
        gid, now = _new_id("cmpl"), int(time.time())
        slot, deadline = admit()
        events = generate_all(prompts, n, max_tokens, sampling, stops, req.seed, deadline)
        if req.stream:
            def chunk(i, delta, fin, use=None):
                if i is None and use is None:
                    return
                yield sse({"id": gid, "object": "text_completion", "created": now, "model": model_name,
                           "choices": [] if i is None else [{"index": i, "text": delta, "logprobs": None,
                                                             "finish_reason": fin}],
                           **({"usage": use} if use is not None else {})})
            include = bool(req.stream_options and req.stream_options.include_usage)
            return streaming_response(stream(gid, prompts, n, events, slot, chunk, include), slot)
        try:
            texts, finish, used = collect(events, len(prompts) * n)
        finally:
            slot.release()
        store.put(gid, [(prompts[i // n][0], texts[i]) for i in range(len(texts))])
        return {"id": gid, "object": "text_completion", "created": now, "model": model_name,
                "choices": [{"index": i, "text": t, "logprobs": None, "finish_reason": f}
                            for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage(prompts, used)}

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest):
        check_model(req.model)
        turns = []
        for m in req.messages:
            content = m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)
            turns.append((m.role, content))
        text = render_chat(turns)
        if len(text) > 4 * MAX_PROMPT_CHARS:
            raise ServiceError(400, f"messages: the conversation renders to {len(text)} characters, more than "
                               f"{4 * MAX_PROMPT_CHARS}", param="messages")
        prompts = [(text, engine.encode(text, "messages"))]
        n, stops, sampling = req.n or 1, stops_of(req, CHAT_STOP), sampling_of(req)
        max_tokens = req.max_completion_tokens or req.max_tokens or CHAT_DEFAULT_MAX_TOKENS
        gid, now = _new_id("chatcmpl"), int(time.time())
        slot, deadline = admit()
        events = generate_all(prompts, n, max_tokens, sampling, stops, req.seed, deadline)
        if req.stream:
            def chunk(i, delta, fin, use=None):
                base = {"id": gid, "object": "chat.completion.chunk", "created": now, "model": model_name}
                if use is not None:
                    yield sse(base | {"choices": [], "usage": use})
                elif i is None:  # the opening chunks: each choice's role
                    for j in range(n):
                        yield sse(base | {"choices": [{"index": j, "delta": {"role": "assistant", "content": ""},
                                                       "logprobs": None, "finish_reason": None}]})
                else:
                    yield sse(base | {"choices": [{"index": i, "delta": {"content": delta} if delta else {},
                                                   "logprobs": None, "finish_reason": fin}]})
            include = bool(req.stream_options and req.stream_options.include_usage)
            return streaming_response(stream(gid, prompts, n, events, slot, chunk, include), slot)
        try:
            texts, finish, used = collect(events, n)
        finally:
            slot.release()
        store.put(gid, [(text, t) for t in texts])
        return {"id": gid, "object": "chat.completion", "created": now, "model": model_name,
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                             "finish_reason": f} for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage(prompts, used)}

    @app.post("/v1/generate")
    def generate(req: GenerateRequest):
        ids = engine.encode(req.prompt, "prompt", status=422)
        gid = _new_id("gen")
        slot, deadline = admit()
        try:
            t0 = time.perf_counter()
            sampling = {"temperature": req.temperature, "top_k": req.top_k, "top_p": req.top_p}
            texts, _, used = collect(engine.run(ids, 1, req.max_new_tokens, sampling, [], generator_of(req.seed),
                                                deadline), 1)
            dt = time.perf_counter() - t0
        finally:
            slot.release()
        store.put(gid, [(req.prompt, texts[0])])
        return {"id": gid, "completion": texts[0], "tokens": used[0],
                "tokens_per_s": used[0] / dt if dt > 0 else 0.0, "model": info}

    @app.post("/v1/feedback")
    def feedback(req: FeedbackRequest):
        prompt, completion = req.prompt, req.completion
        if req.id is not None:
            pairs = store.get(req.id)
            if pairs is None:
                raise ServiceError(404, f"no generation {req.id!r} here: the server keeps the last "
                                   f"{store.size} generations (or send prompt and completion instead)",
                                   param="id", code="generation_not_found")
            if req.choice >= len(pairs):
                raise ServiceError(422, f"choice: generation {req.id} has {len(pairs)} choice(s), "
                                   f"got {req.choice}", param="choice")
            stored = pairs[req.choice]
            for name, given, kept in (("prompt", prompt, stored[0]), ("completion", completion, stored[1])):
                if given is not None and given != kept:
                    raise ServiceError(422, f"{name} differs from generation {req.id}'s (leave it out to use "
                                       "the generation's)", param=name)
            prompt, completion = stored
        elif prompt is None or completion is None:
            raise ServiceError(422, "feedback needs the id of a generation, or its prompt and completion",
                               param="id" if prompt is None and completion is None else
                               ("prompt" if prompt is None else "completion"))
        rid = uuid.uuid4().hex
        record = {"id": rid, "time": time.time(), "prompt": prompt, "completion": completion,
                  "rating": req.rating, "corrected": req.corrected, "checkpoint_step": info["step"],
                  "generation_id": req.id, "choice": req.choice if req.id is not None else None}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with feedback_lock:
            with open(feedback_file, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return {"status": "recorded", "id": rid, "generation_id": req.id}

    app.state.feedback_file = feedback_file
    app.state.model_name = model_name
    app.state.engine = engine
    return app


class ApiKey:
    """ASGI middleware: requests other than GET /health need ``Authorization: Bearer <key>``; others get 401
    in OpenAI's error shape (compared in constant time)."""

    def __init__(self, app, key):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") == "/health":
            return await self.app(scope, receive, send)
        auth = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        from fastapi.responses import JSONResponse
        response = JSONResponse(error_body("missing or wrong API key (send the header 'Authorization: Bearer "
                                           "<key>'; the OpenAI client's api_key)", code="invalid_api_key"),
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the application sees it,
    whether its size is announced (Content-Length) or not (chunked transfer): the body is read here,
    counting, and never held beyond limit + one chunk; an accepted body is replayed to the app."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._too_large(scope, receive, send, length.decode(errors="replace") + " bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._too_large(scope, receive, send, f"more than {self.limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send, what):
        from fastapi.responses import JSONResponse
        response = JSONResponse(error_body(f"request body too large ({what}; the limit is {self.limit} bytes)",
                                           code="request_too_large"),
                                status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


def run(checkpoint, host="127.0.0.1", port=8000, feedback_file=None, log_level="info", **options):
    """Serve ``checkpoint`` with uvicorn (blocks until interrupted); ``options`` go to ``create_app``."""
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover
        raise ImportError("pyengine serve needs FastAPI and uvicorn: pip install 'pyengine[serve]'") from e
    app = create_app(checkpoint, feedback_file, **options)
    print(f"pyengine serve: {checkpoint} as model {app.state.model_name!r} on http://{host}:{port} "
          f"(OpenAI-compatible /v1/completions, /v1/chat/completions; feedback -> {app.state.feedback_file})",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
