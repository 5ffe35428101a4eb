"""Teams, members and invitations, as the signed-in user (row-level security decides who may do what).

An invitation is a row keyed by the invited email address; when that person signs in with the address, the
Account screen lists it and they accept it (``accept_invitation``, which checks the address in their token).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ConsoleError, InputError
from core.store.postgres import PostgresStore

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ROLES = ("member", "admin")


class TeamService:
    def __init__(self, store: PostgresStore) -> None:
        if store.identity is None:
            raise ConsoleError("Sign in to manage teams.")
        self.store = store
        self.me = store.identity

    def my_teams(self) -> list[dict[str, Any]]:
        return self.store.query(
            "select t.id, t.name, m.role from public.teams t join public.team_members m on m.team_id = t.id"
            " where m.user_id = %s order by t.name", (self.me.user_id,))

    def create_team(self, name: str) -> str:
        name = (name or "").strip()
        if not 1 <= len(name) <= 80:
            raise InputError("A team name has 1 to 80 characters.")
        return str(self.store.query("select public.create_team(%s) as id", (name,), write=True)[0]["id"])

    def members(self, team_id: str) -> list[dict[str, Any]]:
        return self.store.query(
            "select m.user_id, m.role, p.email, p.display_name from public.team_members m"
            " left join public.profiles p on p.id = m.user_id where m.team_id = %s order by m.role, p.email",
            (team_id,))

    def invite(self, team_id: str, email: str, role: str = "member") -> dict[str, Any]:
        email = (email or "").strip().lower()
        if not EMAIL.match(email):
            raise InputError(f"'{email}' is not an email address.")
        if role not in ROLES:
            raise InputError(f"Role must be one of {', '.join(ROLES)}.")
        rows = self.store.query(
            "insert into public.invitations (team_id, email, role, invited_by) values (%s, %s, %s, %s)"
            " on conflict (team_id, email) do update set role = excluded.role, accepted_at = null"
            " returning id, email, role", (team_id, email, role, self.me.user_id), write=True)
        return rows[0]

    def invitations(self, team_id: str) -> list[dict[str, Any]]:
        """Open invitations of a team (team admins)."""
        return self.store.query("select id, email, role, created_at from public.invitations"
                                " where team_id = %s and accepted_at is null order by created_at", (team_id,))

    def my_invitations(self) -> list[dict[str, Any]]:
        """Open invitations addressed to the signed-in email, with the team's name."""
        return self.store.query(
            "select i.id, i.team_id, t.name as team_name, i.role from public.invitations i"
            " join public.teams t on t.id = i.team_id where i.email = %s and i.accepted_at is null",
            ((self.me.email or "").lower(),))

    def accept(self, invitation_id: str) -> str:
        return str(self.store.query("select public.accept_invitation(%s) as team_id", (invitation_id,),
                                    write=True)[0]["team_id"])

    def withdraw(self, invitation_id: str) -> None:
        """Decline (the invitee) or revoke (a team admin) an invitation."""
        self.store.query("delete from public.invitations where id = %s", (invitation_id,), write=True)

    def remove_member(self, team_id: str, user_id: str) -> None:
        rows = self.store.query("delete from public.team_members where team_id = %s and user_id = %s returning 1",
                                (team_id, user_id), write=True)
        if not rows:
            raise ConsoleError("You cannot remove this member (only team admins can, and only owners remove owners).")
