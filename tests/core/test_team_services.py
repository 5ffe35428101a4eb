"""Team mode's services on the real database: sign-in against the GoTrue fake, teams and invitations as
signed-in users, and the encrypted credential vault."""

from __future__ import annotations

import psycopg
import pytest

from core.auth import SupabaseAuth
from core.credential_vault import CredentialKeyError, CredentialVault, decrypt, encrypt
from core.errors import ConsoleError, SignInError
from core.store.postgres import AccessDenied, PostgresStore
from core.team import TeamService
from tests.support.team_db import make_user

pytestmark = pytest.mark.postgres
KEY = "x" * 40


@pytest.fixture()
def base(pg_db):
    store = PostgresStore(pg_db)
    yield store
    store.close()


def test_sign_up_sign_in_refresh_and_sign_out(local_supabase):
    auth = SupabaseAuth(local_supabase.url, local_supabase.anon_key)
    first = auth.sign_up("Dana@Example.com", "long enough password")
    assert first.email == "dana@example.com" and first.identity().user_id == first.user_id
    again = auth.sign_in("dana@example.com", "long enough password")
    assert again.user_id == first.user_id and again.access_token != first.access_token
    refreshed = auth.refresh(again)
    assert refreshed.user_id == again.user_id and refreshed.refresh_token != again.refresh_token
    auth.sign_out(refreshed)
    with pytest.raises(SignInError, match="expired"):
        auth.refresh(refreshed)  # the server revoked the session's refresh token


def test_sign_in_errors_are_sentences(local_supabase):
    auth = SupabaseAuth(local_supabase.url, local_supabase.anon_key)
    auth.sign_up("erin@example.com", "long enough password")
    with pytest.raises(SignInError, match="Wrong email or password"):
        auth.sign_in("erin@example.com", "nope nope")
    with pytest.raises(SignInError, match="already exists"):
        auth.sign_up("erin@example.com", "long enough password")
    with pytest.raises(SignInError, match="longer password"):
        auth.sign_up("frank@example.com", "123")
    with pytest.raises(SignInError, match="cannot be reached"):
        SupabaseAuth("http://127.0.0.1:9", local_supabase.anon_key).sign_in("erin@example.com", "x" * 8)


def test_invitation_is_accepted_only_by_its_address(pg_db, base):
    alice, bob, eve = (make_user(pg_db, f"{n}@example.com") for n in ("alice", "bob", "eve"))
    owner = TeamService(base.as_user(alice))
    team = owner.create_team("Red")
    assert owner.my_teams() == [{"id": owner.my_teams()[0]["id"], "name": "Red", "role": "owner"}]
    inv = owner.invite(team, " BOB@example.com ")
    assert inv["email"] == "bob@example.com" and owner.invitations(team)[0]["email"] == "bob@example.com"
    with pytest.raises(AccessDenied):
        TeamService(base.as_user(eve)).accept(str(inv["id"]))
    with pytest.raises(ConsoleError):  # not an admin of Red: the insert is refused by row-level security
        TeamService(base.as_user(eve)).invite(team, "eve2@example.com")
    as_bob = TeamService(base.as_user(bob))
    assert [i["team_name"] for i in as_bob.my_invitations()] == ["Red"]
    assert as_bob.accept(str(inv["id"])) == team
    assert {m["email"]: m["role"] for m in owner.members(team)} == {"alice@example.com": "owner",
                                                                    "bob@example.com": "member"}
    assert as_bob.my_invitations() == [] and owner.invitations(team) == []
    with pytest.raises(ConsoleError, match="cannot remove"):
        as_bob.remove_member(team, alice.user_id)  # a member cannot remove the owner
    as_bob.remove_member(team, bob.user_id)  # but may leave
    assert [m["email"] for m in owner.members(team)] == ["alice@example.com"]


def test_vault_keeps_ciphertext_and_masks(pg_db, base):
    alice, bob = make_user(pg_db, "alice@example.com"), make_user(pg_db, "bob@example.com")
    vault = CredentialVault(base.as_user(alice), KEY)
    vault.save("kaggle", {"username": "alice", "key": "0123456789abcdef0123"})
    with psycopg.connect(pg_db) as conn:
        stored = conn.execute("select api_key_encrypted, key_hint from public.provider_credentials").fetchone()
    assert "0123456789abcdef0123" not in stored[0] and stored[1] == "012…0123"
    assert [r["key_hint"] for r in vault.masked()] == ["012…0123"]
    assert vault.credentials_for("kaggle") == {"username": "alice", "key": "0123456789abcdef0123"}
    assert CredentialVault(base.as_user(bob), KEY).credentials_for("kaggle") == {}  # not Bob's to read
    # The worker (no identity) decrypts for the job's owner, just before the provider call.
    assert CredentialVault(base, KEY).credentials_for("kaggle", alice.user_id)["username"] == "alice"
    vault.delete("kaggle")
    assert vault.masked() == []


def test_vault_key_must_be_set_and_right():
    token = encrypt(KEY, {"api_key": "s3cret"})
    assert decrypt(KEY, token) == {"api_key": "s3cret"}
    with pytest.raises(CredentialKeyError, match="cannot be decrypted"):
        decrypt("y" * 40, token)
    with pytest.raises(CredentialKeyError, match="32 or more"):
        encrypt("short", {"api_key": "s3cret"})
