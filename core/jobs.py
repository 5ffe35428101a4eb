"""JobService: create, launch, poll, cancel and finish jobs (design.md §2).

Every status change goes through the store's compare-and-set ``transition_job``, so the console's poller, a
second console, the CLI and the trainer can race without corrupting a job. Every terminal state releases the
machine. ``poll`` is the whole lifecycle for one job; the poller thread and ``python -m core worker`` call
``poll_all`` on a timer.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from core import lifecycle as L
from core.config import METHOD_FORMATS, TrainingConfig, parse_config
from core.datasets.ingest import resolve_dataset
from core.errors import ConfigError, ConsoleError, DatasetError, ProviderError, StateError
from core.jobspec import JobSpec, SinkSpec
from core.providers.base import LaunchRequest, Provider, ProviderStatus, get_provider
from core.store.records import JobRecord, new_id, utcnow

log = logging.getLogger("finetune_console.jobs")


@dataclass
class ServiceSettings:
    provisioning_timeout_s: float = 30 * 60
    stale_after_s: float = 180
    cancel_grace_s: float = 30
    poll_interval_s: float = 5.0
    reap_interval_s: float = 300.0  # how often poll_all looks for labelled machines no live job owns
    backoff_base_s: float = 5.0  # a provider answering 429/5xx for a job is asked again after this, doubling
    backoff_max_s: float = 120.0


class JobService:
    def __init__(self, store: Any, *, settings: ServiceSettings | None = None,
                 provider_factory: Callable[[str], Provider] | None = None,
                 credentials: Callable[[str], dict[str, str]] | None = None) -> None:
        self.store = store
        self.settings = settings or ServiceSettings()
        self._credentials = credentials or (lambda name: {})
        self._factory = provider_factory or (lambda name: get_provider(name, self._credentials(name)))
        self._providers: dict[str, Provider] = {}
        self._built_with: dict[str, dict[str, str]] = {}  # provider name -> the credentials its instance got
        self._backoff: dict[str, tuple[int, float]] = {}  # job id -> (failures in a row, monotonic retry time)
        self._last_reap = time.monotonic()

    def provider(self, name: str) -> Provider:
        # A key typed on the Deploy page after the poller's own service built this provider (for the orphan
        # reaper, say) must reach that instance too, or every status call of the new job is refused.
        creds = self._credentials(name)
        if name not in self._providers or self._built_with.get(name) != creds:
            self._providers[name] = self._factory(name)
            self._built_with[name] = creds
        return self._providers[name]

    def credentials(self, name: str) -> dict[str, str]:
        """The credentials this service launches ``name`` with (the environment's and the page's; in team mode
        the signed-in user's, from the vault). For fingerprints and masked display only."""
        return dict(self._credentials(name))

    def reset_provider(self, name: str) -> None:
        """Forget a provider instance, so the next call builds it with the credentials as they are now."""
        self._providers.pop(name, None)
        self._built_with.pop(name, None)

    # -- create and launch ----------------------------------------------------------------------------------
    def create(self, cfg: TrainingConfig | dict[str, Any], *, provider: str = "local", gpu_type: str | None = None,
               gpu_count: int = 1, budget_usd: float | None = None, config_id: str | None = None,
               params: dict[str, Any] | None = None, cost_per_hour: float | None = None) -> JobRecord:
        """Validate everything that can be checked before a cent is spent, then queue the job."""
        if isinstance(cfg, dict):
            cfg = parse_config(cfg)
        if gpu_count < 1:
            raise ConfigError(f"A job needs at least one GPU, not {gpu_count}.", [("gpu_count", "set 1 or more")])
        prov = self.provider(provider)  # raises UnknownProviderError listing the valid names
        provider_params = prov.parse_params(params) if params is not None else None
        dataset = resolve_dataset(self.store, cfg.data.train_path)
        self._check_dataset_fits(cfg, dataset.format)
        self._check_model_reachable(cfg)
        budget = budget_usd if budget_usd is not None else cfg.budget.max_usd
        job = JobRecord(
            id=new_id("job"), status=L.QUEUED, provider=provider, config=cfg.to_dict(), config_name=cfg.name,
            training_config_id=config_id, dataset_id=dataset.id, model_name=cfg.model.name,
            method=cfg.training.method, gpu_type=gpu_type, gpu_count=gpu_count, budget_limit_usd=budget,
            cost_per_hour=cost_per_hour, dataset_size=dataset.valid_rows or dataset.row_count,
            provider_params=provider_params.model_dump() if provider_params else {},
        )
        job.estimate = self._quote(cfg, provider, gpu_type, gpu_count, cost_per_hour, budget)
        if job.cost_per_hour is None and job.estimate.get("price_per_hour") is not None:
            job.cost_per_hour = job.estimate["price_per_hour"]  # the trainer's budget guard prices with the quote
        return self.store.create_job(job)

    def _quote(self, cfg: TrainingConfig, provider: str, gpu_type: str | None, gpu_count: int,
               cost_per_hour: float | None, budget: float | None) -> dict[str, Any]:
        """The estimate shown before launch, kept on the job: the launch checks its price, the end its error."""
        try:
            from core.estimate import estimate_for_config

            est = estimate_for_config(cfg, store=self.store, provider=provider, gpu=gpu_type, gpu_count=gpu_count,
                                      price_per_hour=cost_per_hour, budget_usd=budget, compare=False)
            return est.model_dump(mode="json", exclude={"fits", "cheapest"})
        except Exception as exc:  # noqa: BLE001 - an estimate that cannot be made must not block the launch
            log.warning("estimating %s: %s", cfg.name, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}

    @staticmethod
    def _check_dataset_fits(cfg: TrainingConfig, fmt: str | None) -> None:
        if fmt is None:
            raise DatasetError("The dataset has no row in a known format; validate it on the Dataset page.")
        allowed = METHOD_FORMATS[cfg.training.method]
        if fmt not in allowed:
            raise DatasetError(
                f"{cfg.training.method.upper()} cannot learn from a '{fmt}' dataset; it takes {', '.join(allowed)}.",
                hint="Choose another method or dataset.",
            )

    @staticmethod
    def _check_model_reachable(cfg: TrainingConfig) -> None:
        name = cfg.model.name
        looks_local = name.startswith(("/", "./", "~", "../")) or Path(name).expanduser().exists()
        if looks_local and not (Path(name).expanduser() / "config.json").is_file():
            raise ConsoleError(f"Model folder {name} does not exist or has no config.json.",
                               hint="Run `python -m core demo` for the demo model, or give a Hub id like org/name.")

    def deploy(self, cfg: TrainingConfig | dict[str, Any], **kw: Any) -> JobRecord:
        """Create and, when the provider has room, launch at once; otherwise the job waits in ``queued``."""
        job = self.create(cfg, **kw)
        return self.poll(job.id)

    def launch(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job.status != L.QUEUED:
            raise StateError(f"Job {job_id} is {job.status}; only a queued job can be launched.")
        if not self.store.transition_job(job_id, L.PROVISIONING, expect=[L.QUEUED]):
            return self.store.get_job(job_id)  # another poller claimed it
        prov = self.provider(job.provider)
        secrets = dict(prov.credentials)
        try:
            if prov.report_channel != "sqlite":
                prov.validate_credentials()  # a cheap real call: a refused key fails here, before anything is rented
            req = self._launch_request(job, prov)
            secrets.update(req.env)
            ref = prov.launch(req)
        except ConsoleError as exc:
            self._fail(job_id, redact(f"Launch failed: {exc}", secrets), error_type=type(exc).__name__)
            return self.store.get_job(job_id)
        except Exception as exc:  # noqa: BLE001 - a provider SDK bug must still leave the job consistent
            log.error("launch of %s failed:\n%s", job_id, redact("".join(traceback.format_exception(exc)), secrets))
            self._fail(job_id, redact(f"Launch failed: {type(exc).__name__}: {exc}", secrets),
                       error_type=type(exc).__name__)
            return self.store.get_job(job_id)
        extra_fields = {}
        if ref.extra.get("deadline_epoch"):
            # The machine stops itself then; the console needs it to settle a job it could not watch.
            extra_fields["provider_params"] = {**(job.provider_params or {}),
                                               "_deadline_epoch": ref.extra["deadline_epoch"]}
        self.store.update_job(
            job_id, provider_ref=ref.ref, pod_url=ref.url,
            cost_per_hour=ref.cost_per_hour if ref.cost_per_hour is not None else job.cost_per_hour,
            gpu_type=ref.gpu_type or job.gpu_type, log_path=ref.extra.get("log_path"), **extra_fields,
        )
        launched = self.store.get_job(job_id)
        if launched.is_terminal:
            # Cancelled while the launch was under way: polls skip a terminal job, so release what it started now.
            self._release(launched, prov)
            return launched
        self._check_price(job, ref.cost_per_hour, ref.gpu_type or job.gpu_type)
        return self.store.get_job(job_id)

    def _check_price(self, job: JobRecord, reported: float | None, gpu: str | None) -> None:
        """Warn when the launched machine costs other than the price quoted before launch (dstack #1886)."""
        from core.estimate import price_difference

        quoted = (job.estimate or {}).get("price_per_hour", job.cost_per_hour)
        diff = price_difference(quoted, reported)
        if diff is None:
            return
        msg = (f"The quote was ${quoted:.3f}/h for {gpu or 'this machine'} on {job.provider}, but the provider reports "
               f"${reported:.3f}/h for the launched machine ({diff:+.0%}).")
        self.store.add_error(job.id, "price_mismatch", msg, None,
                             "The console's budget stop and cost figures use the provider's price from now on.")
        est = {**(job.estimate or {}), "price_check": {"quoted": quoted, "reported": reported,
                                                       "difference_pct": round(diff * 100, 1), "message": msg}}
        self.store.update_job(job.id, estimate=est)

    def _launch_request(self, job: JobRecord, prov: Provider) -> LaunchRequest:
        from core.paths import artifacts_dir, job_dir

        jdir = job_dir(job.id)
        dataset = self.store.get_dataset(job.dataset_id) if job.dataset_id else None
        cfg = parse_config(job.config)
        if dataset:
            cfg.data.train_path = dataset.path
        spec = JobSpec(
            job_id=job.id, config=cfg, dataset_path=dataset.path if dataset else cfg.data.train_path,
            output_dir=str(artifacts_dir() / job.id), sink=self.sink_for(job, prov),
            spool_path=str(jdir / "spool.jsonl"), cost_per_hour=job.cost_per_hour or 0.0,
            budget_usd=job.budget_limit_usd, max_hours=cfg.budget.max_hours, provider=job.provider,
            prior_cost_usd=job.total_cost_usd or 0.0,  # a resumed job's earlier runs count against its budget
        )
        spec_path = spec.write(jdir / "job.json")
        params = prov.Params.model_validate(job.provider_params) if job.provider_params else None
        env = {}
        if prov.report_channel != "sqlite":
            # A remote machine pushes the artifact to a private Hub repo when the user has a token.
            token = self._credentials("huggingface").get("token")
            if token:
                env["HF_TOKEN"] = token
            if spec.sink.kind == "supabase" and spec.sink.token:
                # Team mode: the trainer reports to the team database with its job token, which travels in the
                # provider's secret env (the job file the machine receives carries no token).
                env["FTC_SINK_TOKEN"] = spec.sink.token
        return LaunchRequest(
            job_id=job.id, job_dir=str(jdir), spec_path=str(spec_path), bootstrap="", gpu_type=job.gpu_type,
            gpu_count=job.gpu_count, params=params, env=env, budget_usd=job.budget_limit_usd,
            max_hours=cfg.budget.max_hours, files={"dataset": spec.dataset_path},
        )

    def sink_for(self, job: JobRecord, prov: Provider) -> SinkSpec:
        """Local jobs write straight into the console's SQLite file; remote ones report through the channel
        their provider supports (overridden by team mode)."""
        path = getattr(self.store, "path", None)
        if prov.report_channel == "sqlite" and path is not None:
            return SinkSpec(kind="sqlite", path=str(path))
        if prov.report_channel == "http":
            return SinkSpec(kind="http")  # the machine serves its rows; the token reaches it through its env
        return SinkSpec(kind="stdout")

    # -- the lifecycle loop ---------------------------------------------------------------------------------
    def poll_all(self) -> list[JobRecord]:
        if time.monotonic() - self._last_reap >= self.settings.reap_interval_s:
            self._last_reap = time.monotonic()
            try:
                self.reap_orphans(sorted({j.provider for j in self.store.list_jobs(limit=200)} - {"local"}))
            except Exception:  # noqa: BLE001 - the reaper must never stop the lifecycle loop
                log.exception("orphan reaper round failed")
        out = []
        for job in sorted(self.store.list_jobs(statuses=sorted(L.LIVE)), key=lambda j: j.created_at or utcnow()):
            try:
                out.append(self.poll(job.id))
            except Exception:  # noqa: BLE001 - one broken job must not stop the others being polled
                log.exception("polling %s failed", job.id)
        return out

    def poll(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job.status == L.QUEUED:
            if job.cancel_requested:
                self.store.transition_job(job_id, L.CANCELLED, reason="Cancelled before it started.")
                return self.store.get_job(job_id)
            if self._has_room(job):
                return self.launch(job_id)
            return job
        if job.is_terminal:
            self._note_outcome(job)
            return job
        prov = self.provider(job.provider)
        if not job.provider_ref:
            if self._age(job.updated_at) > self.settings.provisioning_timeout_s:
                self._fail(job_id, "The launch never returned a machine reference.")
            return self.store.get_job(job_id)
        failures, retry_at = self._backoff.get(job_id, (0, 0.0))
        if time.monotonic() < retry_at:
            return job  # the provider asked us to slow down (429) or is failing (5xx): wait out the backoff
        try:
            st = prov.status(job.provider_ref)
        except ProviderError as exc:
            log.warning("status of %s: %s", job_id, exc)
            if exc.retryable:
                delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** failures)
                self._backoff[job_id] = (failures + 1, time.monotonic() + delay)
            return job  # transient: try again later
        self._backoff.pop(job_id, None)
        self._ingest_remote(job, prov)
        job = self.store.get_job(job_id)
        if job.is_terminal:
            self._release(job, prov)
            return job
        if st.alive:
            return self._while_alive(job, prov, st)
        return self._after_exit(job, prov, st)

    def _has_room(self, job: JobRecord) -> bool:
        cap = self.provider(job.provider).capacity()
        if cap is None:
            return True
        busy = [j for j in self.store.list_jobs(statuses=[L.PROVISIONING, L.RUNNING, L.COMPLETING])
                if j.provider == job.provider]
        if len(busy) >= cap:
            return False
        queued = [j for j in self.store.list_jobs(statuses=[L.QUEUED]) if j.provider == job.provider]
        queued.sort(key=lambda j: j.created_at or utcnow())
        return any(q.id == job.id for q in queued[: cap - len(busy)])

    def _while_alive(self, job: JobRecord, prov: Provider, st: ProviderStatus) -> JobRecord:
        cost = self._cost(job, prov, st)
        if cost is not None and cost != job.total_cost_usd:
            self.store.update_job(job.id, total_cost_usd=round(cost, 6))
        if job.budget_limit_usd and cost is not None and cost >= job.budget_limit_usd:
            # Second line of defence behind the trainer's guard: release now, the money is the hard limit.
            self._terminate(job, prov)
            self.store.transition_job(
                job.id, L.BUDGET_STOPPED, total_cost_usd=round(cost, 6),
                reason=f"The console stopped the machine at ${cost:.2f}, the ${job.budget_limit_usd:.2f} budget.")
            self._note_outcome(job)
            return self.store.get_job(job.id)
        if job.cancel_requested and job.provider_ref:
            try:
                prov.request_stop(job.provider_ref)  # remote trainers learn of the cancel through their channel
            except ProviderError as exc:
                log.warning("asking %s to stop: %s", job.id, exc)
        if job.cancel_requested and self._age(job.cancel_requested_at) > self.settings.cancel_grace_s:
            self._terminate(job, prov)
            self.store.transition_job(job.id, L.CANCELLED,
                                      reason="Cancelled by the user; the trainer did not stop in time and was killed.")
            self._note_outcome(job)
            return self.store.get_job(job.id)
        if job.status == L.PROVISIONING and job.heartbeat_at is None and \
                self._age(job.updated_at) > self.settings.provisioning_timeout_s:
            self._terminate(job, prov)
            self._fail(job.id, f"The machine did not start training within "
                               f"{self.settings.provisioning_timeout_s / 60:.0f} minutes; it was released.")
        return self.store.get_job(job.id)

    def _after_exit(self, job: JobRecord, prov: Provider, st: ProviderStatus) -> JobRecord:
        """The machine or process ended: collect what it left, then settle the job's final state."""
        self._drain_spool(job)
        job = self.store.get_job(job.id)
        if job.status == L.COMPLETING:
            return self.finish(job.id)
        deadline = (job.provider_params or {}).get("_deadline_epoch")
        if not job.is_terminal:
            if job.cancel_requested:
                self.store.transition_job(job.id, L.CANCELLED, reason="Cancelled by the user.")
            elif deadline and time.time() >= float(deadline):
                # The machine stopped itself at its budget deadline while nobody collected its last rows.
                self.store.transition_job(job.id, L.BUDGET_STOPPED, reason=(
                    "The machine stopped itself at its budget deadline; rows it wrote after the console's last "
                    "visit were not collected."))
            else:
                msg = st.message or "The trainer stopped without reporting a result."
                self._fail(job.id, msg, error_type="process_exit")
        job = self.store.get_job(job.id)
        self._release(job, prov)
        return job

    def finish(self, job_id: str) -> JobRecord:
        """completing -> completed: the registry row with lineage, final cost, and the machine released."""
        from core.registry import build_model_record

        job = self.store.get_job(job_id)
        prov = self.provider(job.provider)
        cost = self._cost(job, prov, None)
        if cost is not None:
            self.store.update_job(job_id, total_cost_usd=round(cost, 6))
            job = self.store.get_job(job_id)
        model = build_model_record(self.store, job) if job.artifact_path else None
        self.store.complete_job(job_id, model, progress=1.0)
        job = self.store.get_job(job_id)
        self._release(job, prov)
        return job

    # -- cancel ---------------------------------------------------------------------------------------------
    def cancel(self, job_id: str, *, keep_checkpoint: bool = True) -> JobRecord:
        """Ask the trainer to save a checkpoint and stop; the poller kills it if it does not within the grace.
        ``keep_checkpoint=False`` releases the machine at once instead, without saving anything."""
        job = self.store.get_job(job_id)
        if job.is_terminal:
            raise StateError(f"Job {job_id} already ended ({job.status}); there is nothing to cancel.")
        self.store.update_job(job_id, cancel_requested=True, cancel_requested_at=utcnow())
        if not keep_checkpoint and job.provider_ref:
            self._terminate(job, self.provider(job.provider))
            self.store.transition_job(job_id, L.CANCELLED,
                                      reason="Cancelled by the user; stopped at once, no checkpoint kept.")
        elif job.status == L.QUEUED:
            self.store.transition_job(job_id, L.CANCELLED, expect=[L.QUEUED], reason="Cancelled before it started.")
        elif not job.provider_ref:
            self.store.transition_job(job_id, L.CANCELLED, reason="Cancelled during launch.")
        return self.store.get_job(job_id)

    # -- resume ---------------------------------------------------------------------------------------------
    def resume(self, job_id: str, *, budget_usd: float | None = None) -> JobRecord:
        """Relaunch a failed, cancelled or budget-stopped job from its latest checkpoint (optimizer, scheduler and
        RNG state included); the step count and metrics continue. ``budget_usd`` raises a budget that stopped it."""
        from core.paths import artifacts_dir, job_dir
        from trainer.checkpoints import latest_checkpoint

        job = self.store.get_job(job_id)
        if job.status not in (L.FAILED, L.CANCELLED, L.BUDGET_STOPPED):
            raise StateError(f"Job {job_id} is {job.status}; only a failed, cancelled or budget-stopped job can be "
                             "resumed.")
        prov = self.provider(job.provider)
        why_not = prov.capabilities.get("resume", f"{prov.display_name} does not keep checkpoints after the "
                                                  "machine is released.")
        if why_not:
            raise StateError(f"Job {job_id} cannot be resumed: {why_not}", hint="Launch the config again instead.")
        if latest_checkpoint(artifacts_dir() / job_id) is None:
            raise StateError(f"Job {job_id} saved no checkpoint before it stopped, so there is nothing to resume.",
                             hint="Launch the config again, or lower training.save_steps to save earlier.")
        if job.provider_ref and prov.status(job.provider_ref).alive:
            raise StateError(f"Job {job_id} is still saving its checkpoint and shutting down.",
                             hint="Resume it again in a few seconds.")
        budget = budget_usd if budget_usd is not None else job.budget_limit_usd
        if job.status == L.BUDGET_STOPPED and budget is not None and (job.total_cost_usd or 0) >= budget:
            raise StateError(f"Job {job_id} already spent ${job.total_cost_usd:.2f} of its ${budget:.2f} budget.",
                             hint="Resume with a higher budget.")
        self._drain_spool(job)  # the old run's last rows land before the job goes live again
        (job_dir(job_id) / "resume").write_text("")
        # Terminal states have no way forward in the lifecycle; resuming is a deliberate restart, so the status is
        # set directly, and the compare-and-set from queued to provisioning still stops a double launch.
        self.store.update_job(job_id, status=L.QUEUED, reason=None, error_message=None, cancel_requested=False,
                              cancel_requested_at=None, provider_ref=None, pod_url=None, completed_at=None,
                              budget_limit_usd=budget)
        return self.poll(job_id)

    # -- waiting --------------------------------------------------------------------------------------------
    def wait(self, job_id: str, *, timeout_s: float | None = None, interval_s: float = 1.0,
             on_poll: Callable[[JobRecord], None] | None = None) -> JobRecord:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.poll(job_id)
            if on_poll:
                on_poll(job)
            if job.is_terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(interval_s)

    # -- orphans --------------------------------------------------------------------------------------------
    def reap_orphans(self, provider_names: list[str]) -> list[str]:
        """Terminate labelled resources that no live job owns; returns what was released."""
        live = self.store.list_jobs(statuses=sorted(L.LIVE))
        live_refs = {j.provider_ref for j in live if j.provider_ref}
        live_ids = {j.id for j in live}  # a job still launching has no ref yet, but its machine is not an orphan
        released = []
        for name in provider_names:
            try:
                prov = self.provider(name)
                owned = prov.list_owned_jobs()
            except ConsoleError as exc:
                log.warning("listing %s resources: %s", name, exc)
                continue
            for ref, job_id in owned.items():
                if ref not in live_refs and job_id not in live_ids:
                    try:
                        prov.cancel(ref)
                        released.append(f"{name}:{ref}")
                    except ProviderError as exc:
                        log.warning("releasing orphan %s: %s", ref, exc)
        return released

    # -- helpers --------------------------------------------------------------------------------------------
    def is_stale(self, job: JobRecord) -> bool:
        return job.status == L.RUNNING and job.heartbeat_at is not None and \
            self._age(job.heartbeat_at) > self.settings.stale_after_s

    def _cost(self, job: JobRecord, prov: Provider, st: ProviderStatus | None) -> float | None:
        if not job.provider_ref:
            return job.total_cost_usd
        try:
            c = prov.cost(job.provider_ref)
        except ProviderError:
            c = None
        if c is None and job.cost_per_hour and job.started_at:
            end = job.completed_at or utcnow()
            deadline = (job.provider_params or {}).get("_deadline_epoch")
            if deadline:
                end = min(end, datetime.fromtimestamp(float(deadline), timezone.utc))
            c = max(0.0, (end - job.started_at).total_seconds()) / 3600 * job.cost_per_hour
        return c

    def _terminate(self, job: JobRecord, prov: Provider) -> None:
        if not job.provider_ref:
            return
        try:
            kill = getattr(prov, "terminate_now", None)
            (kill or prov.cancel)(job.provider_ref)
        except ProviderError as exc:
            log.warning("terminating %s: %s", job.id, exc)

    def _release(self, job: JobRecord, prov: Provider) -> None:
        """Idempotent: a terminal job's machine is always released (billing ends)."""
        self._note_outcome(job)
        if job.provider_ref:
            try:
                prov.cancel(job.provider_ref)
            except ProviderError as exc:
                log.warning("releasing %s: %s", job.id, exc)

    def _note_outcome(self, job: JobRecord) -> None:
        """Once a job has ended, keep the estimate's error beside the estimate (estimated vs actual time, cost)."""
        if "outcome" in (job.estimate or {}):
            return
        try:
            from core.estimate import record_outcome

            record_outcome(self.store, job.id)
        except Exception:  # noqa: BLE001 - bookkeeping must never disturb the lifecycle
            log.exception("recording the estimate error of %s", job.id)

    def _fail(self, job_id: str, reason: str, error_type: str = "console") -> None:
        if self.store.transition_job(job_id, L.FAILED, reason=reason, error_message=reason):
            self.store.add_error(job_id, error_type, reason, None, None)

    def _drain_spool(self, job: JobRecord) -> None:
        """Rows a dead local trainer never flushed are still in its spool: apply them."""
        from core.paths import job_dir
        from trainer.report import replay_spool

        spool = job_dir(job.id) / "spool.jsonl"
        if spool.exists():
            try:
                replay_spool(self.store, job.id, spool)
            except Exception:  # noqa: BLE001 - a torn spool must not block settling the job
                log.exception("replaying the spool of %s", job.id)

    def _ingest_remote(self, job: JobRecord, prov: Provider) -> None:
        """Rows that only the console can fetch (provider logs, the trainer's endpoint)."""
        if prov.report_channel == "sqlite":
            return
        from trainer.report import apply_entries

        after = int((job.provider_params or {}).get("_ingested_seq", 0))
        try:
            entries = prov.pull_entries(job.provider_ref, after)
        except ProviderError as exc:
            log.warning("pulling rows of %s: %s", job.id, exc)
            return
        if entries:
            apply_entries(self.store, job.id, entries)
            top = max([after] + [int(e.get("seq") or 0) for e in entries])
            if top > after:
                fresh = self.store.get_job(job.id).provider_params or {}
                self.store.update_job(job.id, provider_params={**fresh, "_ingested_seq": top})

    @staticmethod
    def _age(ts: Any) -> float:
        if ts is None:
            return 0.0
        return (utcnow() - ts) / timedelta(seconds=1)


def redact(text: str, credentials: dict[str, str]) -> str:
    """``text`` with every credential value masked: an SDK's error may quote the header or URL that carried one,
    and the text is kept on the job row and shown on the page."""
    for value in sorted((v for v in credentials.values() if v and len(v) >= 6), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def deployment_response(job: JobRecord) -> dict[str, Any]:
    """The workflow spec's DeploymentResponse (spec §3 #3)."""
    est = job.estimate or {}
    return {
        "job_id": job.id,
        "deployment_id": job.deployment_id,
        "provider": job.provider,
        "provider_ref": job.provider_ref,
        "pod_url": job.pod_url,
        "status": job.status,
        "reason": job.reason,
        "gpu_type": job.gpu_type,
        "gpu_count": job.gpu_count,
        "cost": {
            "estimated_cost": est.get("cost_usd"),
            "cost_per_hour": job.cost_per_hour,
            "actual_cost": job.total_cost_usd if job.is_terminal else None,
        },
        "created_at": job.created_at.isoformat() if job.created_at else None,
    }
