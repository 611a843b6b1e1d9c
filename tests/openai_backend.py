"""A small OpenAI-compatible chat backend for the service tests (a real HTTP server).

``python tests/openai_backend.py --port P [--key-env VAR]`` answers
``POST /v1/chat/completions`` as OpenAI does, plain or streamed (server-sent events),
with the text ``"<model> answers: <last user message>"``; with ``--key-env`` it refuses
requests whose bearer token is not that variable's value (401).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def make_app(key: str | None) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        model = body["model"]
        text = f"{model} answers: {body['messages'][-1]['content']}"
        base = {"id": "chatcmpl-test", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }

        async def events():
            for word in text.split(" "):
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": word + " "}}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key-env")
    a = p.parse_args()
    key = os.environ.get(a.key_env) if a.key_env else None
    uvicorn.run(make_app(key), host="127.0.0.1", port=a.port, log_level="warning")
