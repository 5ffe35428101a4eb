"""JobService for team mode: several consoles on one database, each job run with its owner's credentials and
reporting through a per-job token.

- ``poll_all`` takes a Postgres advisory lock per job (``PostgresStore.job_lock``), so of all the pollers of all
  the consoles (and ``python -m core worker``), one acts on a given job at a time (design.md §2).
- Provider clients are made per job owner, with the owner's credentials decrypted from the vault just for them.
- ``sink_for`` issues a fresh job token and hands the training machine ``supabase`` as its sink: the project URL
  and, packed in the sink token, the job token and the project's anon key (never the service key). A remote
  machine receives that token through its provider's secret env (``FTC_SINK_TOKEN``); a provider with no secret
  env (Kaggle) keeps its own channel, and the team's pollers pull its rows into the team database.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

from core import lifecycle as L
from core.credential_vault import CredentialVault
from core.jobs import JobService, log
from core.jobspec import SinkSpec
from core.job_tokens import issue_job_token, pack_credential
from core.providers.base import Provider
from core.store.records import JobRecord, utcnow
from core.team_settings import TeamSettings, team_settings


class TeamJobService(JobService):
    def __init__(self, store: Any, *, team: TeamSettings | None = None, vault: CredentialVault | None = None,
                 **kw: Any) -> None:
        self.team = team or team_settings()
        self.vault = vault or CredentialVault(store, self.team.credentials_key)
        self._owner: str | None = None
        # Credentials read once per job acted on (a poll calls provider() several times; each read is a query).
        self._read: dict[tuple[str, str], dict[str, str]] | None = None
        super().__init__(store, credentials=self._owner_credentials, **kw)

    # -- whose credentials --------------------------------------------------------------------------------
    def _current_owner(self) -> str | None:
        if self._owner:
            return self._owner
        identity = getattr(self.store, "identity", None)
        return identity.user_id if identity else None

    def _owner_credentials(self, provider: str) -> dict[str, str]:
        owner = self._current_owner()
        if owner is None or not self.team.credentials_key:
            return {}
        if self._read is None:
            return self.vault.credentials_for(provider, owner)
        if (owner, provider) not in self._read:
            self._read[owner, provider] = self.vault.credentials_for(provider, owner)
        return self._read[owner, provider]

    def provider(self, name: str) -> Provider:
        # One instance per owner, rebuilt when the owner saves another key (the poller may have built it first).
        key = f"{self._current_owner()}:{name}"
        creds = self._credentials(name)
        if key not in self._providers or self._built_with.get(key) != creds:
            self._providers[key] = self._factory(name)
            self._built_with[key] = creds
        return self._providers[key]

    @contextmanager
    def _acting_for(self, job_id: str) -> Iterator[JobRecord]:
        job = self.store.get_job(job_id)
        previous = (self._owner, self._read)
        self._owner, self._read = job.user_id, {}
        try:
            yield job
        finally:
            self._owner, self._read = previous

    # -- the lifecycle, per owner and under a lock ------------------------------------------------------------
    def poll(self, job_id: str) -> JobRecord:
        with self._acting_for(job_id):
            return super().poll(job_id)

    def cancel(self, job_id: str, *, keep_checkpoint: bool = True) -> JobRecord:
        with self._acting_for(job_id):
            return super().cancel(job_id, keep_checkpoint=keep_checkpoint)

    def poll_all(self) -> list[JobRecord]:
        out = []
        lock = getattr(self.store, "job_lock", None)
        for job in sorted(self.store.list_jobs(statuses=sorted(L.LIVE)), key=lambda j: j.created_at or utcnow()):
            try:
                with (lock(job.id) if lock else nullcontext(True)) as mine:
                    if mine:  # otherwise another console's poller is acting on this job right now
                        out.append(self.poll(job.id))
            except Exception:  # noqa: BLE001 - one broken job must not stop the others being polled
                log.exception("polling %s failed", job.id)
        return out

    # -- reporting -----------------------------------------------------------------------------------------
    def sink_for(self, job: JobRecord, prov: Provider) -> SinkSpec:
        if not (self.team.url and self.team.anon_key) or not prov.secret_env:
            # No way to hand the machine a token: its rows come back through the provider's channel, pulled by
            # the team's pollers into the team database.
            return super().sink_for(job, prov)
        token = issue_job_token(self.store, job.id)
        return SinkSpec(kind="supabase", url=self.team.url, token=pack_credential(token, self.team.anon_key))


def job_service_for(store: Any, **kw: Any) -> JobService:
    """The JobService that suits the store: team mode's on a team store, the embedded one otherwise."""
    if getattr(store, "team_mode", False):
        return TeamJobService(store, **kw)
    from core.credentials import credentials_for

    return JobService(store, credentials=credentials_for, **kw)
