"""Users, teams and members on a test database, made the way the product makes them (auth.users rows as GoTrue
writes them, teams through the create_team RPC as the signed-in user)."""

from __future__ import annotations

import psycopg

from core.store.postgres import Identity, PostgresStore


def make_user(dsn: str, email: str) -> Identity:
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email, email_confirmed_at) values (%s, now()) returning id",
                           (email,)).fetchone()[0]
    return Identity(user_id=str(uid), email=email)


def make_team(dsn: str, owner: Identity, name: str) -> str:
    store = PostgresStore(dsn, identity=owner)
    try:
        return str(store.query("select public.create_team(%s) as id", (name,), write=True)[0]["id"])
    finally:
        store.close()


def add_member(dsn: str, team_id: str, user: Identity, role: str = "member") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into public.team_members (team_id, user_id, role) values (%s, %s, %s)",
                     (team_id, user.user_id, role))
