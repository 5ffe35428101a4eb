from core import lifecycle as L
from core.jobs import JobService
from core.store.records import JobRecord, new_id
from core.store.sqlite import SQLiteStore


class RecordingProvider:
    """Stands in for any provider: records which release call the service made."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def terminate_now(self, ref):
        self.calls.append(("terminate_now", ref))

    def cancel(self, ref):
        self.calls.append(("cancel", ref))


def _running(store):
    return store.create_job(JobRecord(id=new_id("job"), provider="fake", status=L.RUNNING, provider_ref="ref-1"))


def test_cancel_now_releases_the_machine_at_once(tmp_path):
    store, prov = SQLiteStore(tmp_path / "c.db"), RecordingProvider()
    svc = JobService(store, provider_factory=lambda name: prov)
    job = svc.cancel(_running(store).id, keep_checkpoint=False)
    assert job.status == L.CANCELLED and "no checkpoint" in job.reason and job.cancel_requested
    assert prov.calls == [("terminate_now", "ref-1")]


def test_stop_and_keep_checkpoint_only_asks_the_trainer(tmp_path):
    store, prov = SQLiteStore(tmp_path / "c.db"), RecordingProvider()
    svc = JobService(store, provider_factory=lambda name: prov)
    job = svc.cancel(_running(store).id)
    assert job.status == L.RUNNING and job.cancel_requested and prov.calls == []


def test_team_mode_cancel_now_releases_the_machine_at_once(tmp_path):
    # The monitor's "Cancel now" and `python -m core cancel --now` pass keep_checkpoint to whichever service the
    # store gets; team mode's override used to refuse the argument (a TypeError on the page).
    from core.team_jobs import TeamJobService
    from core.team_settings import TeamSettings

    store, prov = SQLiteStore(tmp_path / "c.db"), RecordingProvider()
    svc = TeamJobService(store, team=TeamSettings(), provider_factory=lambda name: prov)
    job = svc.cancel(_running(store).id, keep_checkpoint=False)
    assert job.status == L.CANCELLED and "no checkpoint" in job.reason
    assert prov.calls == [("terminate_now", "ref-1")]
