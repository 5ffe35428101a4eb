"""A loopback stand-in for the Hugging Face Hub's repo and commit API, enough for ``HfApi.create_repo`` and
``HfApi.upload_folder`` pointed at it through ``HfApi(endpoint=...)``.

Wire format read from huggingface_hub 2.4:
- ``hf_api.py HfApi.create_repo``: ``POST /api/repos/create`` with ``{"name", "organization", "visibility"?,
  "type"?}``; the answer's ``url`` becomes the ``RepoUrl``; 409 means it exists (accepted with ``exist_ok``).
- ``hf_api.py HfApi._validate_yaml``: ``POST /api/validate-yaml`` with ``{"content", "repoType"}`` when a
  README.md is committed; ``{"errors": [], "warnings": []}``, or 400 with ``{"errors": [{"message"}]}`` for
  metadata the Hub refuses. Here that is a ``base_model`` that is not a repo id, such as the local path PEFT and
  TRL write into an adapter's card (the Hub's message form as quoted in huggingface/autotrain-advanced#648).
- ``_commit_api.py _fetch_upload_modes``: ``POST /api/{type}s/{repo}/preupload/{revision}`` with ``{"files":
  [{"path", "sample", "size"}]}``; answers ``{"files": [{"path", "uploadMode", "shouldIgnore", "oid"?}]}``.
- ``_commit_api.py _send_commit`` / ``_prepare_commit_payload``: ``POST /api/{type}s/{repo}/commit/{revision}``
  with NDJSON lines ``{"key": "header", ...}`` then ``{"key": "file", "value": {"content", "path", "encoding":
  "base64"}}`` per file; answers ``{"commitUrl", "commitOid"}``.

The real Hub answers ``lfs`` for large binaries, which huggingface_hub then moves through Xet storage (hf_xet); this
fake answers ``regular`` for every file so the bytes travel inline in the commit and can be checked here. The
Xet/LFS transfer is the SDK's own code and is not emulated.
"""

from __future__ import annotations

import base64
import hashlib
import json

from tests.support.loopback import LoopbackServer, Request, Response

TOKEN = "hf_fake_write_token"


class FakeHub(LoopbackServer):
    def __init__(self, user: str = "alice", token: str = TOKEN) -> None:
        super().__init__()
        self.user = user
        self.token = token
        self.repos: dict[str, dict] = {}
        self.route("POST", r"/api/repos/create", self._create)
        self.route("POST", r"/api/validate-yaml", lambda r: self._authed(r) or self._validate_yaml(r))
        self.route("POST", r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)",
                   self._preupload)
        self.route("POST", r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)",
                   self._commit)

    def _validate_yaml(self, req: Request) -> Response:
        import re

        content = req.json()["content"]
        front = content.split("---")[1] if content.startswith("---") else ""
        errors = [{"message": f'"base_model" with value "{v}" is not valid. Use a model id from https://hf.co/models.'}
                  for v in re.findall(r"^base_model:\s*(\S+)\s*$", front, re.M)
                  if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", v)]
        return Response(400 if errors else 200, {"errors": errors, "warnings": []})

    def _authed(self, req: Request) -> Response | None:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, {"error": "Invalid credentials in Authorization header"})
        return None

    def _create(self, req: Request) -> Response:
        if (denied := self._authed(req)):
            return denied
        body = req.json()
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            return Response(409, {"error": "You already created this model repo", "url": url})
        self.repos[repo_id] = {"private": body.get("visibility") == "private", "type": body.get("type") or "model",
                               "files": {}, "commits": []}
        return Response(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo(self, req: Request) -> dict | Response:
        if (denied := self._authed(req)):
            return denied
        repo = self.repos.get(req.match["repo"])
        if repo is None:
            return Response(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        return repo

    def _preupload(self, req: Request) -> Response:
        repo = self._repo(req)
        if isinstance(repo, Response):
            return repo
        files = req.json()["files"]
        return Response(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                         "oid": None} for f in files]})

    def _commit(self, req: Request) -> Response:
        repo = self._repo(req)
        if isinstance(repo, Response):
            return repo
        lines = [json.loads(ln) for ln in req.body.decode().splitlines() if ln.strip()]
        header = next(ln["value"] for ln in lines if ln["key"] == "header")
        added = {}
        for ln in lines:
            if ln["key"] == "file":
                added[ln["value"]["path"]] = base64.b64decode(ln["value"]["content"])
        repo["files"].update(added)
        oid = hashlib.sha1(req.body).hexdigest()
        repo["commits"].append({"summary": header["summary"], "files": sorted(added), "oid": oid})
        return Response(200, {"commitUrl": f"{self.url}/{req.match['repo']}/commit/{oid}", "commitOid": oid,
                              "success": True})
