"""The Store behaviours of tests/store/test_sqlite_store.py, run on the team-mode store against a real
PostgreSQL server as a signed-in team member (row-level security on), plus what only team mode has."""

from __future__ import annotations

import pytest

from core.store.postgres import PostgresStore
from core.store.records import DatasetRecord, JobRecord, new_id
from tests.store.test_sqlite_store import (  # noqa: F401 - collected here against the fixture below
    test_complete_job_registers_exactly_once,
    test_concurrent_writers_from_threads,
    test_configs_upsert_by_name,
    test_datasets_are_kept_once_per_hash,
    test_metric_upsert_merges_and_never_duplicates,
    test_prediction_upsert_is_idempotent,
    test_transition_is_compare_and_set,
    test_unknown_job_field_is_refused,
)
from tests.support.team_db import add_member, make_team, make_user

pytestmark = pytest.mark.postgres


@pytest.fixture()
def team(pg_db):
    alice = make_user(pg_db, "alice@example.com")
    return pg_db, alice, make_team(pg_db, alice, "Red")


@pytest.fixture()
def store(team):
    dsn, alice, team_id = team
    s = PostgresStore(dsn).as_user(alice, team_id)
    yield s
    s.close()


def test_rows_are_stamped_with_user_and_team(team, store):
    dsn, alice, team_id = team
    j = store.create_job(JobRecord(id=new_id("job"), provider="local"))
    assert (j.user_id, j.team_id) == (alice.user_id, team_id)
    cfg = store.save_config("c", {"training": {"method": "sft"}})
    assert (cfg.user_id, cfg.team_id) == (alice.user_id, team_id)


def test_lists_and_name_lookups_follow_the_selected_team(team):
    dsn, alice, red = team
    blue = make_team(dsn, alice, "Blue")
    base = PostgresStore(dsn)
    in_red, in_blue, personal = base.as_user(alice, red), base.as_user(alice, blue), base.as_user(alice)
    try:
        r = in_red.save_config("same-name", {"training": {"method": "sft"}})
        b = in_blue.save_config("same-name", {"training": {"method": "dpo"}})
        assert r.id != b.id  # one per team, not an overwrite of the other team's config
        assert [c.id for c in in_red.list_configs()] == [r.id]
        assert in_blue.get_config("same-name").method == "dpo"
        assert personal.list_configs() == []
        in_red.create_job(JobRecord(id="job_red", provider="local"))
        assert [j.id for j in in_blue.list_jobs()] == [] and [j.id for j in in_red.list_jobs()] == ["job_red"]
        # A job is still reachable by id from any workspace its user can see (links from other pages).
        assert in_blue.get_job("job_red").team_id == red
    finally:
        base.close()


def test_same_file_uploaded_by_two_users_without_a_team(pg_db):
    base = PostgresStore(pg_db)
    a, b = (base.as_user(make_user(pg_db, e)) for e in ("a@example.com", "b@example.com"))
    try:
        # Ids derive from the content hash, so both uploads ask for the same id.
        a.add_dataset(DatasetRecord(id="ds_same", name="x.jsonl", content_hash="same", path="/a"))
        got = b.add_dataset(DatasetRecord(id="ds_same", name="x.jsonl", content_hash="same", path="/b"))
        assert got.content_hash == "same" and got.id != a.list_datasets()[0].id
        assert [d.path for d in a.list_datasets()] == ["/a"] and [d.path for d in b.list_datasets()] == ["/b"]
        assert b.get_dataset(got.id).path == "/b"
    finally:
        base.close()


def test_advisory_lock_lets_one_poller_act_on_a_job(team):
    dsn = team[0]
    one, two = PostgresStore(dsn), PostgresStore(dsn)
    try:
        with one.job_lock("job_x") as first:
            with two.job_lock("job_x") as second, two.job_lock("job_y") as other:
                assert (first, second, other) == (True, False, True)
        with two.job_lock("job_x") as again:
            assert again  # released when the first poller finished
    finally:
        one.close()
        two.close()


def test_member_added_later_sees_the_team_rows(team, store):
    dsn, alice, team_id = team
    store.create_job(JobRecord(id="job_shared", provider="local"))
    bob = make_user(dsn, "bob@example.com")
    bob_store = PostgresStore(dsn).as_user(bob, team_id)
    try:
        assert bob_store.list_jobs() == []
        add_member(dsn, team_id, bob)
        assert [j.id for j in bob_store.list_jobs()] == ["job_shared"]
    finally:
        bob_store.close()
