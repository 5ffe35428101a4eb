"""A loopback stand-in for PostgREST, the server behind Supabase's ``/rest/v1`` (docs.postgrest.org): it maps the
REST paths the `postgrest` 2.34 client (used by `supabase`) sends onto SQL against the real test database, run
the way PostgREST runs every request, so row-level security and grants decide exactly as they would on Supabase.

Per request, as PostgREST does: verify the bearer JWT (HS256, the project's secret; no bearer means the anon
role), open a transaction on a connection logged in as ``authenticator``, ``set_config('role', <jwt role>, true)``
and ``set_config('request.jwt.claims', <claims>, true)``, run the statement, commit (roll back on error).

Covered, read from site-packages/postgrest (``base_request_builder.py`` pre_select/pre_insert/pre_upsert/
pre_update/pre_delete and the filter methods, ``_sync/client.py`` rpc):
- ``GET /<table>?select=a,b&<col>=<op>.<value>&order=<col>.<asc|desc>&limit=&offset=`` with ops eq, neq, gt, gte,
  lt, lte, like, ilike, is (null/true/false), in.(...);
- ``POST /<table>`` (an object or an array; ``Prefer: return=representation|minimal``,
  ``resolution=merge-duplicates|ignore-duplicates`` with ``on_conflict=``);
- ``PATCH /<table>?<filters>`` and ``DELETE /<table>?<filters>``;
- ``POST /rpc/<function>`` with named arguments in a JSON object, typed from the function's signature
  (``json_to_record``, like PostgREST), scalar or set-returning.
Errors are PostgREST's JSON ({code, message, details, hint}) with its SQLSTATE-to-HTTP table
(docs.postgrest.org/en/latest/references/errors.html): 42501 is 401 for anon and 403 otherwise, 28* 403, 23505
and 23503 409, P0001 400, 42P01/42883 404, 08* 503, and so on. Not covered: resource embedding, count headers,
other schemas than public.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jwt
import psycopg
from psycopg import sql

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE", "ilike": "ILIKE"}
RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}


class ShimError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def http_status(sqlstate: str, anonymous: bool) -> int:
    """PostgREST's SQLSTATE -> HTTP status table."""
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404,
             "42P17": 500, "53400": 500}
    if sqlstate == "42501":
        return 401 if anonymous else 403
    if sqlstate in exact:
        return exact[sqlstate]
    prefix = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500, "39": 500,
              "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500, "F0": 500, "HV": 500,
              "P0": 500, "XX": 500}
    return prefix.get(sqlstate[:2], 400)


def _ident(name: str) -> sql.Identifier:
    if not IDENT.match(name):
        raise ShimError(400, "PGRST100", f"'{name}' is not a plain identifier")
    return sql.Identifier(name)


class PostgrestShim:
    def __init__(self, dsn: str, jwt_secret: str) -> None:
        self.dsn = dsn  # logs in as authenticator, which may only switch to anon / authenticated / service_role
        self.secret = jwt_secret
        self.calls: list[tuple[str, str]] = []

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, path))
        claims: dict[str, Any] = {"role": "anon"}
        try:
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                try:
                    claims = jwt.decode(auth[7:], self.secret, algorithms=["HS256"],
                                        options={"verify_aud": False})
                except jwt.PyJWTError as exc:
                    raise ShimError(401, "PGRST301", f"JWT invalid: {exc}") from None
            payload = json.loads(body) if body else None
            parts = [p for p in path.split("/") if p]
            if len(parts) == 2 and parts[0] == "rpc" and method in ("POST", "GET"):
                args = payload if method == "POST" else {k: v[-1] for k, v in query.items()}
                return self._run(claims, lambda cur: self._rpc(cur, parts[1], args or {}), status=200)
            if len(parts) != 1:
                raise ShimError(404, "PGRST125", f"Invalid path {path}")
            table = parts[0]
            prefer = {p.split("=")[0].strip(): p.split("=", 1)[-1].strip()
                      for p in headers.get("prefer", "").split(",") if p.strip()}
            if method == "GET":
                return self._run(claims, lambda cur: self._select(cur, table, query), status=200)
            if method == "POST":
                rows = payload if isinstance(payload, list) else [payload]
                return self._run(claims, lambda cur: self._insert(cur, table, rows, query, prefer),
                                 status=201, minimal=prefer.get("return") != "representation")
            if method == "PATCH":
                return self._run(claims, lambda cur: self._update(cur, table, payload or {}, query),
                                 status=200, minimal=prefer.get("return") != "representation")
            if method == "DELETE":
                return self._run(claims, lambda cur: self._delete(cur, table, query),
                                 status=200, minimal=prefer.get("return") != "representation")
            raise ShimError(405, "PGRST117", f"Unsupported HTTP method {method}")
        except ShimError as exc:
            return _json(exc.status, {"code": exc.code, "message": exc.message, "details": None, "hint": None})

    # -- the transaction, exactly as PostgREST sets it up ---------------------------------------------------
    def _run(self, claims: dict[str, Any], work, *, status: int, minimal: bool = False):
        role = str(claims.get("role") or "anon")
        try:
            with psycopg.connect(self.dsn) as conn:
                with conn.cursor() as cur:
                    cur.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                                (role, json.dumps(claims)))
                    result = work(cur)
        except psycopg.Error as exc:
            diag = exc.diag
            state = diag.sqlstate or "XX000"
            return _json(http_status(state, role == "anon"), {
                "code": state, "message": diag.message_primary or str(exc), "details": diag.message_detail,
                "hint": diag.message_hint})
        if minimal:
            return (204 if status == 200 else status), {}, b""
        return status, {"Content-Type": "application/json; charset=utf-8"}, result.encode()

    # -- reads and writes ----------------------------------------------------------------------------------
    def _where(self, query: dict[str, list[str]]) -> tuple[sql.Composable, list[Any]]:
        conds: list[sql.Composable] = []
        params: list[Any] = []
        for col, values in query.items():
            if col in RESERVED:
                continue
            for raw in values:
                op, _, value = raw.partition(".")
                negate = op == "not"
                if negate:
                    op, _, value = value.partition(".")
                if op in OPS:
                    cond = sql.SQL("{} {} %s").format(_ident(col), sql.SQL(OPS[op]))
                    params.append(value.replace("*", "%") if op in ("like", "ilike") else value)
                elif op == "is":
                    if value not in ("null", "true", "false"):
                        raise ShimError(400, "PGRST100", f"is.{value} is not null, true or false")
                    cond = sql.SQL("{} IS {}").format(_ident(col), sql.SQL(value.upper()))
                elif op == "in":
                    items = [v.strip().strip('"') for v in value.strip("()").split(",") if v.strip()]
                    cond = sql.SQL("{} = ANY(%s)").format(_ident(col))
                    params.append(items)
                else:
                    raise ShimError(400, "PGRST100", f"Unsupported operator {op!r}")
                conds.append(sql.SQL("NOT ({})").format(cond) if negate else cond)
        if not conds:
            return sql.SQL(""), params
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds), params

    @staticmethod
    def _columns(query: dict[str, list[str]]) -> sql.Composable:
        raw = (query.get("select") or ["*"])[-1]
        if raw in ("", "*"):
            return sql.SQL("*")
        return sql.SQL(", ").join(_ident(c.strip().strip('"')) for c in raw.split(","))

    @staticmethod
    def _agg(statement: sql.Composable) -> sql.Composable:
        return sql.SQL("WITH _r AS ({}) SELECT coalesce(json_agg(_r), '[]')::text FROM _r").format(statement)

    def _select(self, cur, table: str, query: dict[str, list[str]]) -> str:
        where, params = self._where(query)
        stmt = sql.SQL("SELECT {} FROM public.{}{}").format(self._columns(query), _ident(table), where)
        order = (query.get("order") or [None])[-1]
        if order:
            terms = []
            for term in order.split(","):
                col, *mods = term.split(".")
                terms.append(sql.SQL("{} {}").format(_ident(col), sql.SQL("DESC" if "desc" in mods else "ASC")))
            stmt += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)
        for key in ("limit", "offset"):
            if query.get(key):
                stmt += sql.SQL(f" {key.upper()} %s")
                params.append(int(query[key][-1]))
        cur.execute(self._agg(stmt), params)
        return cur.fetchone()[0]

    def _insert(self, cur, table: str, rows: list[dict[str, Any]], query, prefer) -> str:
        cols = sorted({k for r in rows for k in r})
        col_sql = sql.SQL(", ").join(_ident(c) for c in cols)
        stmt = sql.SQL("INSERT INTO public.{t} ({c}) SELECT {c} FROM json_populate_recordset(null::public.{t}, %s)").format(
            t=_ident(table), c=col_sql)
        resolution = prefer.get("resolution")
        if resolution:
            target = (query.get("on_conflict") or [""])[-1]
            target_sql = sql.SQL("({})").format(sql.SQL(", ").join(_ident(c) for c in target.split(","))) \
                if target else sql.SQL("")
            if resolution == "ignore-duplicates":
                stmt += sql.SQL(" ON CONFLICT {} DO NOTHING").format(target_sql)
            else:
                sets = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(_ident(c)) for c in cols)
                stmt += sql.SQL(" ON CONFLICT {} DO UPDATE SET {}").format(target_sql, sets)
        cur.execute(self._agg(stmt + sql.SQL(" RETURNING *")), [json.dumps(rows)])
        return cur.fetchone()[0]

    def _update(self, cur, table: str, values: dict[str, Any], query) -> str:
        where, params = self._where(query)
        cols = sql.SQL(", ").join(_ident(c) for c in values)
        stmt = sql.SQL("UPDATE public.{t} SET ({c}) = (SELECT {c} FROM json_populate_record(null::public.{t}, %s))"
                       "{w} RETURNING *").format(t=_ident(table), c=cols, w=where)
        cur.execute(self._agg(stmt), [json.dumps(values), *params])
        return cur.fetchone()[0]

    def _delete(self, cur, table: str, query) -> str:
        where, params = self._where(query)
        cur.execute(self._agg(sql.SQL("DELETE FROM public.{}{} RETURNING *").format(_ident(table), where)), params)
        return cur.fetchone()[0]

    def _rpc(self, cur, fn: str, args: dict[str, Any]) -> str:
        cur.execute(
            "select p.proargnames, array(select format_type(t, null) from unnest(p.proargtypes) t), p.proretset"
            " from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = %s", (fn,))
        found = cur.fetchall()
        match = [f for f in found if set(args) <= set(f[0] or [])]
        if not match:
            raise ShimError(404, "PGRST202", f"Could not find the function public.{fn}({', '.join(sorted(args))})"
                                              " in the schema cache")
        names, types, retset = match[0]
        typed = {n: t for n, t in zip(names, types)}
        used = [n for n in names if n in args]
        call = sql.SQL("public.{}({})").format(_ident(fn), sql.SQL(", ").join(
            sql.SQL("{0} := _a.{0}").format(_ident(n)) for n in used))
        source = sql.SQL(" FROM json_to_record(%s) AS _a({})").format(sql.SQL(", ").join(
            sql.SQL("{} {}").format(_ident(n), sql.SQL(typed[n])) for n in used)) if used else sql.SQL("")
        if retset:
            stmt = sql.SQL("SELECT coalesce(json_agg(_r), '[]')::text FROM (SELECT * FROM {}{}) _r").format(
                call, source) if not used else sql.SQL(
                "SELECT coalesce(json_agg(_r), '[]')::text FROM (SELECT _f.* {} , LATERAL {} _f) _r").format(
                source, call)
        else:
            stmt = sql.SQL("SELECT to_json({})::text{}").format(call, source)
        cur.execute(stmt, [json.dumps(args)] if used else [])
        return cur.fetchone()[0]


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()
