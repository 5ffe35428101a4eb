"""Row-level security as the `supabase` client meets it: signed in through Supabase Auth (the GoTrue fake),
calling /rest/v1 (the PostgREST shim) with the user's access token, against the real database."""

from __future__ import annotations

import pytest
from postgrest import APIError
from supabase import ClientOptions, create_client

from core.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


def signed_in_client(project, email: str):
    client = create_client(project.url, project.anon_key,
                           options=ClientOptions(auto_refresh_token=False, persist_session=False))
    client.auth.sign_up({"email": email, "password": "long enough password"})
    client.auth.sign_in_with_password({"email": email, "password": "long enough password"})
    return client


def test_users_reach_only_their_teams_rows_through_the_rest_api(local_supabase, pg_db):
    alice = signed_in_client(local_supabase, "alice@example.com")
    bob = signed_in_client(local_supabase, "bob@example.com")
    red = alice.rpc("create_team", {"p_name": "Red"}).execute().data
    alice_id = alice.auth.get_user().user.id
    alice.table("training_jobs").insert({"id": "job_red", "provider": "local", "team_id": red,
                                         "user_id": alice_id}).execute()

    assert [r["id"] for r in alice.table("training_jobs").select("id").execute().data] == ["job_red"]
    assert bob.table("training_jobs").select("*").execute().data == []
    assert bob.table("training_jobs").update({"reason": "mine now"}).eq("id", "job_red").execute().data == []
    assert bob.table("training_jobs").delete().eq("id", "job_red").execute().data == []
    with pytest.raises(APIError) as err:
        bob.table("training_metrics").insert({"job_id": "job_red", "step": 1, "loss": 0.0}).execute()
    assert err.value.code == "42501"

    # Once invited and accepted, Bob sees the team's job through the same API.
    inv = alice.table("invitations").insert({"team_id": red, "email": "bob@example.com",
                                             "invited_by": alice_id}).execute().data[0]
    assert bob.rpc("accept_invitation", {"p_invitation": inv["id"]}).execute().data == red
    assert [r["id"] for r in bob.table("training_jobs").select("id").execute().data] == ["job_red"]
    job = bob.table("training_jobs").select("status, team_id").eq("id", "job_red").execute().data[0]
    assert job == {"status": "queued", "team_id": red}
    store = PostgresStore(pg_db)
    try:
        assert store.get_job("job_red").user_id == alice_id  # the row written over REST, read by the store
    finally:
        store.close()
