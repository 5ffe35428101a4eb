"""A loopback stand-in for an Ollama server (``OLLAMA_HOST`` points at it), speaking the REST API of ollama/ollama
docs/api.md (the ``/api/create`` form with ``from``/``files``/``adapters`` introduced in PR #8388) and the
OpenAI-compatible ``/v1`` routes of docs/openai.md:

- ``GET /api/version`` -> ``{"version"}``.
- ``HEAD /api/blobs/sha256:<hex>`` -> 200 when held, 404 when not.
- ``POST /api/blobs/sha256:<hex>`` with the file as the body -> 201; 400 when the bytes do not hash to the digest.
- ``POST /api/create`` ``{"model", "from"?, "files"?, "adapters"?, "template"?, "parameters"?, "stream"}`` -> NDJSON
  ``{"status": ...}`` lines ending in ``{"status": "success"}``; an unknown ``from`` or blob is an ``{"error"}``
  line, as the server reports failures inside the stream once it has started answering.
- ``GET /api/tags`` -> ``{"models": [{"name", "model", ...}]}``.
- ``POST /v1/chat/completions`` with ``"stream": true`` -> server-sent ``chat.completion.chunk`` events.

Unlike a real server it does not convert or run weights: a created model answers with a fixed reply.
"""

from __future__ import annotations

import hashlib
import json

from tests.support.loopback import LoopbackServer, Request, Response, chat_chunks, sse


class FakeOllama(LoopbackServer):
    def __init__(self, reply: str = "The capital of France is Paris.", existing: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.reply = reply
        self.blobs: dict[str, bytes] = {}
        self.models: dict[str, dict] = {name: {"from": None} for name in existing}
        self.route("GET", r"/api/version", lambda r: Response(200, {"version": "0.13.0"}))
        self.route("HEAD", r"/api/blobs/(?P<digest>sha256:[0-9a-f]{64})", self._head_blob)
        self.route("POST", r"/api/blobs/(?P<digest>sha256:[0-9a-f]{64})", self._post_blob)
        self.route("POST", r"/api/create", self._create)
        self.route("GET", r"/api/tags", self._tags)
        self.route("POST", r"/v1/chat/completions", self._chat)

    def _head_blob(self, req: Request) -> Response:
        return Response(200 if req.match["digest"] in self.blobs else 404)

    def _post_blob(self, req: Request) -> Response:
        digest = req.match["digest"]
        if "sha256:" + hashlib.sha256(req.body).hexdigest() != digest:
            return Response(400, {"error": "digest mismatch"})
        self.blobs[digest] = req.body
        return Response(201)

    def _create(self, req: Request) -> Response:
        body = req.json()
        name = body["model"]

        def lines():
            yield {"status": "reading model metadata"}
            if body.get("from") and body["from"] not in self.models:
                yield {"error": f"pull model manifest: file does not exist ({body['from']})"}
                return
            for kind in ("files", "adapters"):
                for fname, digest in (body.get(kind) or {}).items():
                    if digest not in self.blobs:
                        yield {"error": f"{kind[:-1]} {fname}: blob {digest} not found"}
                        return
            if body.get("files"):
                yield {"status": "converting model"}
            if body.get("adapters"):
                yield {"status": "converting adapter"}
            self.models[name] = {k: body.get(k) for k in ("from", "files", "adapters", "template", "parameters")}
            yield {"status": "writing manifest"}
            yield {"status": "success"}

        return Response(200, chunks=(json.dumps(x).encode() + b"\n" for x in lines()))

    def _tags(self, req: Request) -> Response:
        return Response(200, {"models": [{"name": f"{n}:latest" if ":" not in n else n, "model": n}
                                         for n in self.models]})

    def _chat(self, req: Request) -> Response:
        body = req.json()
        if body["model"] not in self.models:
            return Response(404, {"error": {"message": f"model '{body['model']}' not found", "type": "api_error"}})
        return Response(200, chunks=sse(chat_chunks(body["model"], self.reply)),
                        headers={"Content-Type": "text/event-stream"})
