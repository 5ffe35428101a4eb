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


def test_a_job_cancelled_while_its_launch_runs_has_its_machine_released(tmp_path):
    # The Deploy page's cancel lands while the poller thread is inside provider.launch (bundling, renting): the
    # job is cancelled with no ref yet, then the launch returns one. Polls skip terminal jobs, so the launch
    # itself must release it, or the machine bills until the orphan reaper's next round.
    from core.providers.base import ProviderRef

    store = SQLiteStore(tmp_path / "c.db")
    svc = JobService(store, provider_factory=lambda name: prov)

    class LaunchingProvider(RecordingProvider):
        report_channel = "sqlite"
        credentials: dict = {}

        def launch(self, req):
            svc.cancel(req.job_id)
            return ProviderRef(ref="pod-9")

    prov = LaunchingProvider()
    job = store.create_job(JobRecord(id=new_id("job"), provider="fake", status=L.QUEUED))
    svc._launch_request = lambda job, prov: type("Req", (), {"job_id": job.id, "env": {}})()  # no spec needed here
    job = svc.launch(job.id)
    assert job.status == L.CANCELLED and job.provider_ref == "pod-9"
    assert prov.calls == [("cancel", "pod-9")]
