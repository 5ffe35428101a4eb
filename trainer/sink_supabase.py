"""Team mode's reporting sink: rows go to Supabase over HTTPS through the ``security definer`` ingest functions
(supabase/migrations/20261129000000_team_mode.sql), called with the `supabase` client.

The machine holds the project's public (anon) key and a per-job token, never the service key nor a user's
session. Both travel in the job spec's sink ``token`` as ``<job token>:<anon key>`` (core.job_tokens);
the anon key may also come from ``$SUPABASE_ANON_KEY``. What the token allows is decided by the database: rows of
this job only, until the token is revoked or the job ends. A refused token is final: the sink says so
(``refused``), reports a cancel so training stops at the next step, and the reporter stops waiting on it; the
rows stay in the local spool.
"""

from __future__ import annotations

import os
from typing import Any

from core.job_tokens import unpack_credential
from trainer.report import SinkUnavailable, apply_entries

REFUSED_CODES = ("28",)  # invalid authorization specification: unknown, revoked or ended token
REJECTED_CODES = ("22", "23", "42", "PGRST1", "PGRST2")  # bad rows or a missing function: retrying cannot help


class TokenRefused(SinkUnavailable):
    """The database refused the job token (revoked, unknown, or the job has ended)."""


class RowsRejected(Exception):
    """The database refused the rows themselves (a bug in what we send); kept in the spool."""


def _credential(credential: str) -> tuple[str, str]:
    token, anon = unpack_credential(credential, os.environ.get("SUPABASE_ANON_KEY", ""))
    if not token or not anon:
        raise ValueError("the supabase sink needs the job token and the project's anon key "
                         "(token '<job token>:<anon key>' or $SUPABASE_ANON_KEY)")
    return token, anon


class SupabaseSink:
    def __init__(self, job_id: str, url: str, job_token: str, anon_key: str, *, timeout_s: float = 20.0) -> None:
        from supabase import ClientOptions, create_client

        self.job_id = job_id
        self._token = job_token
        self.client = create_client(url, anon_key, options=ClientOptions(
            auto_refresh_token=False, persist_session=False, postgrest_client_timeout=timeout_s))
        self.refused: str | None = None  # the database's reason, once it refused the token

    # -- the Sink protocol ---------------------------------------------------------------------------------
    def write(self, entries: list[dict[str, Any]]) -> None:
        apply_entries(_IngestCalls(self._rpc), self.job_id, entries)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self._rpc("ingest_heartbeat", p_fields=fields)

    def cancel_requested(self) -> bool | None:
        if self.refused:
            return True  # nothing more will be accepted: stop training, keep the checkpoint and the spool
        try:
            return bool(self._rpc("ingest_heartbeat", p_fields={}))
        except TokenRefused:
            return True
        except Exception:  # noqa: BLE001 - unknown this time; ask again later
            return None

    def close(self) -> None:
        self.client.postgrest.aclose()

    # -- transport -----------------------------------------------------------------------------------------
    def _rpc(self, fn: str, **params: Any) -> Any:
        import httpx
        from postgrest import APIError

        if self.refused:
            raise TokenRefused(self.refused)
        try:
            return self.client.rpc(fn, {"p_token": self._token, **params}).execute().data
        except APIError as exc:
            code = str(exc.code or "")
            if code.startswith(REFUSED_CODES):
                self.refused = exc.message or "job token refused"
                raise TokenRefused(self.refused) from None
            if code.startswith(REJECTED_CODES):
                raise RowsRejected(f"{fn}: {code} {exc.message}") from None
            raise SinkUnavailable(f"{fn}: {code} {exc.message}") from None
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"{fn}: {type(exc).__name__}: {exc}") from None


class _IngestCalls:
    """The part of the Store that ``apply_entries`` writes through, mapped onto the ingest functions (the job
    comes from the token, so ``job_id`` is not sent)."""

    def __init__(self, rpc: Any) -> None:
        self.rpc = rpc

    def upsert_metrics(self, job_id: str, rows: list[dict[str, Any]]) -> int:
        return self.rpc("ingest_metrics", p_rows=rows)

    def upsert_predictions(self, job_id: str, rows: list[dict[str, Any]]) -> int:
        return self.rpc("ingest_predictions", p_rows=rows)

    def transition_job(self, job_id: str, to: str, **fields: Any) -> bool:
        return self.rpc("ingest_status", p_status=to, p_fields=fields)

    def update_job(self, job_id: str, **fields: Any) -> None:
        self.rpc("ingest_heartbeat", p_fields=fields)

    def get_errors(self, job_id: str) -> list[Any]:
        return []  # ingest_error itself skips an error already recorded (a replay)

    def add_error(self, job_id: str, error_type: str, message: str, traceback: str | None = None,
                  hint: str | None = None) -> None:
        self.rpc("ingest_error", p_error_type=error_type, p_message=message, p_traceback=traceback, p_hint=hint)


def make_supabase_sink(job_id: str, url: str | None = None, token: str | None = None) -> SupabaseSink:
    url = url or os.environ.get("SUPABASE_URL")
    if not url:
        raise ValueError("the supabase sink needs the project URL (sink url or $SUPABASE_URL)")
    job_token, anon_key = _credential(token or os.environ.get("FTC_JOB_TOKEN", ""))
    return SupabaseSink(job_id, url, job_token, anon_key)
