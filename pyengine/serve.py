"""An HTTP service for a trained language model (FastAPI + uvicorn: ``pip install pyengine[serve]``).

    POST /v1/generate   {"prompt": str, "max_new_tokens": int, "temperature": float, "top_k": int|null,
                         "top_p": float|null, "seed": int|null}
                     -> {"completion": str, "tokens": int, "tokens_per_s": float, "model": {...}}
    POST /v1/feedback   {"prompt": str, "completion": str, "rating": int 1..5, "corrected": str|null}
                     -> {"status": "recorded", "id": str}   (appended durably to a JSON-lines file)
    GET  /health     -> {"status": "ok", ...}

Inputs are validated (types, ranges, prompt length, body size) with 4xx answers that say what is wrong.
The model runs one request at a time (a lock): the kernels already use every core, and the KV cache is
per request. Feedback lines are written with flush + fsync under a lock, so concurrent requests never
interleave a line and an acknowledged record survives a crash.
"""
import json
import os
import threading
import time
import uuid

from . import lm

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 512
MAX_BODY_BYTES = 64 * 1024
MAX_FEEDBACK_CHARS = 8000


def create_app(checkpoint, feedback_file=None):
    """The FastAPI application serving ``checkpoint``."""
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from pydantic import BaseModel, Field
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("pyengine serve needs FastAPI and uvicorn: pip install 'pyengine[serve]'") from e

    model, tokenizer, ck = lm.load_checkpoint(checkpoint)
    feedback_file = feedback_file or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "feedback.jsonl")
    model_lock = threading.Lock()
    feedback_lock = threading.Lock()
    info = {"checkpoint": os.path.abspath(checkpoint), "step": int(ck.get("step", 0)),
            "vocab_size": tokenizer.vocab_size, "block_size": model.config.block_size,
            "parameters": model.num_parameters()}

    # strict: JSON true is not the integer 1, "5" is not 5; allow_inf_nan=False: NaN is refused as NaN
    class GenerateRequest(BaseModel):
        model_config = {"extra": "forbid", "strict": True}
        prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
        max_new_tokens: int = Field(100, ge=1, le=MAX_NEW_TOKENS)
        temperature: float = Field(0.8, ge=0.0, le=5.0, allow_inf_nan=False)
        top_k: int | None = Field(None, ge=1)
        top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
        seed: int | None = Field(None, ge=0, le=2 ** 63 - 1)

    class FeedbackRequest(BaseModel):
        model_config = {"extra": "forbid", "strict": True}
        prompt: str = Field(..., max_length=MAX_FEEDBACK_CHARS)
        completion: str = Field(..., max_length=MAX_FEEDBACK_CHARS)
        rating: int = Field(..., ge=1, le=5)
        corrected: str | None = Field(None, max_length=MAX_FEEDBACK_CHARS)

    app = FastAPI(title="pyengine language model", version="1")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc):
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body", "error": e.get("msg")}
                  for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": info}

    @app.post("/v1/generate")
    def generate(req: GenerateRequest):
        unknown = sorted({c for c in req.prompt if getattr(tokenizer, "stoi", None) is not None
                          and c not in tokenizer.stoi})
        if unknown:
            return JSONResponse({"error": f"prompt has characters outside the model's vocabulary: "
                                          f"{''.join(unknown)[:50]!r}"}, status_code=422)
        with model_lock:
            t0 = time.perf_counter()
            text, _ = lm.sample(None, req.prompt, req.max_new_tokens, req.temperature, req.top_k, req.top_p,
                                req.seed, model=model, tokenizer=tokenizer)
            dt = time.perf_counter() - t0
        return {"completion": text, "tokens": req.max_new_tokens,
                "tokens_per_s": req.max_new_tokens / dt if dt > 0 else 0.0, "model": info}

    @app.post("/v1/feedback")
    def feedback(req: FeedbackRequest):
        rid = uuid.uuid4().hex
        record = {"id": rid, "time": time.time(), "prompt": req.prompt, "completion": req.completion,
                  "rating": req.rating, "corrected": req.corrected, "checkpoint_step": info["step"]}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with feedback_lock:
            with open(feedback_file, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return {"status": "recorded", "id": rid}

    app.state.feedback_file = feedback_file
    return app


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
        response = JSONResponse({"error": f"request body too large ({what}; the limit is {self.limit} bytes)"},
                                status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


def run(checkpoint, host="127.0.0.1", port=8000, feedback_file=None, log_level="info"):
    """Serve ``checkpoint`` with uvicorn (blocks until interrupted)."""
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover
        raise ImportError("pyengine serve needs FastAPI and uvicorn: pip install 'pyengine[serve]'") from e
    app = create_app(checkpoint, feedback_file)
    print(f"pyengine serve: {checkpoint} on http://{host}:{port} (feedback -> {app.state.feedback_file})",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
