"""The Store written once in SQL that SQLite and PostgreSQL both accept.

Engines differ only in how they connect, their placeholder, and how JSON, booleans and timestamps travel; those
are the hooks below. Metric and prediction writes are upserts on their unique keys that merge columns
(COALESCE with the stored value), so a replayed batch never duplicates rows and a system sample and a loss
logged at the same step end up in one row.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable, Iterator

from core import lifecycle
from core.errors import NotFoundError, StoreError
from core.store.records import (
    METRIC_COLUMNS,
    PREDICTION_COLUMNS,
    ConfigRecord,
    DatasetRecord,
    ErrorRecord,
    JobRecord,
    ModelRecord,
    new_id,
    utcnow,
)

JSON_COLUMNS = frozenset(
    {"config", "provider_params", "estimate", "stats", "adapters", "metrics", "metadata", "scores"}
)
BOOL_COLUMNS = frozenset({"cancel_requested"})
TIME_COLUMNS = frozenset(
    {"created_at", "updated_at", "started_at", "completed_at", "heartbeat_at", "timestamp", "cancel_requested_at"}
)
JOB_COLUMNS = tuple(f for f in JobRecord.model_fields if f not in ("id",))
MODEL_COLUMNS = tuple(ModelRecord.model_fields)
DATASET_COLUMNS = tuple(DatasetRecord.model_fields)


class SQLStore:
    """Shared implementation; subclasses provide ``_transaction`` and the value hooks."""

    placeholder = "?"

    # -- engine hooks ----------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def _enc_json(self, value: Any) -> Any:
        return json.dumps(value, default=str)

    def _enc_time(self, value: datetime) -> Any:
        return value.isoformat(timespec="microseconds")

    def _enc_bool(self, value: bool) -> Any:
        return 1 if value else 0

    def _is_unique_violation(self, exc: Exception) -> bool:
        return "UNIQUE" in str(exc) or "duplicate key" in str(exc)

    def _scope(self) -> tuple[str, list[Any]]:
        """Condition (with placeholders) narrowing lists and name lookups of owned tables (configs, datasets,
        jobs, models) to the current workspace. The embedded store has one workspace; in team mode row-level
        security decides what may be seen, and this picks the selected team among those."""
        return "", []

    def _and_scope(self) -> tuple[str, list[Any]]:
        cond, params = self._scope()
        return (f" AND ({cond})", params) if cond else ("", [])

    def _where_scope(self) -> tuple[str, list[Any]]:
        cond, params = self._scope()
        return (f" WHERE ({cond})", params) if cond else ("", [])

    # -- helpers ---------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _enc(self, col: str, value: Any) -> Any:
        if value is None:
            return None
        if col in JSON_COLUMNS:
            return self._enc_json(value)
        if col in BOOL_COLUMNS:
            return self._enc_bool(bool(value))
        if isinstance(value, datetime):
            return self._enc_time(value)
        return value

    @staticmethod
    def _dec(col: str, value: Any) -> Any:
        if value is None:
            return None
        if col in JSON_COLUMNS and isinstance(value, (str, bytes)):
            return json.loads(value)
        if col in BOOL_COLUMNS:
            return bool(value)
        if col in TIME_COLUMNS and isinstance(value, str):
            return datetime.fromisoformat(value)
        return value

    def _rows(self, cur: Any) -> list[dict[str, Any]]:
        names = [d[0] for d in cur.description]
        return [{n: self._dec(n, v) for n, v in zip(names, row)} for row in cur.fetchall()]

    def _exec(self, sql: str, params: Iterable[Any] = (), *, write: bool = False) -> list[dict[str, Any]]:
        with self._transaction(write=write) as cur:
            cur.execute(self._sql(sql), tuple(params))
            return self._rows(cur) if cur.description else []

    def _insert(self, cur: Any, table: str, values: dict[str, Any]) -> None:
        cols = list(values)
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        cur.execute(self._sql(sql), tuple(self._enc(c, values[c]) for c in cols))

    def _one(self, rows: list[dict[str, Any]], what: str, key: str) -> dict[str, Any]:
        if not rows:
            raise NotFoundError(f"No {what} with id '{key}'.")
        return rows[0]

    # -- configs ---------------------------------------------------------------------------------------
    def save_config(self, name: str, config: dict[str, Any], *, config_id: str | None = None) -> ConfigRecord:
        now = utcnow()
        method = (config.get("training") or {}).get("method")
        model_name = (config.get("model") or {}).get("name")
        with self._transaction(write=True) as cur:
            scope, scope_params = self._and_scope()
            cur.execute(self._sql(f"SELECT id FROM training_configs WHERE name = ?{scope}"), (name, *scope_params))
            existing = cur.fetchone()
            target = config_id or (existing[0] if existing else None)
            cid = target or new_id("cfg")
            updated = False
            if target:
                cur.execute(
                    self._sql(
                        "UPDATE training_configs SET name = ?, config = ?, method = ?, model_name = ?, updated_at = ?"
                        " WHERE id = ?"
                    ),
                    (name, self._enc_json(config), method, model_name, self._enc_time(now), target),
                )
                updated = cur.rowcount > 0
            if not updated:
                self._insert(cur, "training_configs", {
                    "id": cid, "name": name, "config": config, "method": method, "model_name": model_name,
                    "created_at": now, "updated_at": now, **self._owner(),
                })
        return self.get_config(cid)

    def get_config(self, id_or_name: str) -> ConfigRecord:
        scope, params = self._and_scope()
        rows = self._exec(f"SELECT * FROM training_configs WHERE id = ? OR (name = ?{scope})",
                          (id_or_name, id_or_name, *params))
        return ConfigRecord(**self._one(rows, "saved config", id_or_name))

    def list_configs(self) -> list[ConfigRecord]:
        scope, params = self._where_scope()
        rows = self._exec(f"SELECT * FROM training_configs{scope} ORDER BY updated_at DESC", params)
        return [ConfigRecord(**r) for r in rows]

    def delete_config(self, config_id: str) -> None:
        self._exec("DELETE FROM training_configs WHERE id = ?", (config_id,), write=True)

    # -- datasets --------------------------------------------------------------------------------------
    def add_dataset(self, rec: DatasetRecord) -> DatasetRecord:
        found = self.find_dataset_by_hash(rec.content_hash)
        if found:
            return found
        values = rec.model_dump()
        values["created_at"] = values.get("created_at") or utcnow()
        values.update({k: v for k, v in self._owner().items() if v is not None})
        try:
            with self._transaction(write=True) as cur:
                self._insert(cur, "datasets", values)
        except Exception as exc:  # a concurrent upload of the same file won the race
            if not self._is_unique_violation(exc):
                raise
        return self.find_dataset_by_hash(rec.content_hash) or rec

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        rows = self._exec("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return DatasetRecord(**self._one(rows, "dataset", dataset_id))

    def find_dataset_by_hash(self, content_hash: str) -> DatasetRecord | None:
        scope, params = self._and_scope()
        rows = self._exec(f"SELECT * FROM datasets WHERE content_hash = ?{scope}", (content_hash, *params))
        return DatasetRecord(**rows[0]) if rows else None

    def list_datasets(self) -> list[DatasetRecord]:
        scope, params = self._where_scope()
        return [DatasetRecord(**r) for r in self._exec(f"SELECT * FROM datasets{scope} ORDER BY created_at DESC",
                                                       params)]

    # -- jobs ------------------------------------------------------------------------------------------
    def create_job(self, job: JobRecord) -> JobRecord:
        now = utcnow()
        values = job.model_dump()
        values["created_at"] = values.get("created_at") or now
        values["updated_at"] = now
        values.update({k: v for k, v in self._owner().items() if v is not None})
        with self._transaction(write=True) as cur:
            self._insert(cur, "training_jobs", values)
        return self.get_job(job.id)

    def get_job(self, job_id: str) -> JobRecord:
        rows = self._exec("SELECT * FROM training_jobs WHERE id = ?", (job_id,))
        return JobRecord(**self._one(rows, "job", job_id))

    def list_jobs(self, statuses: Iterable[str] | None = None, limit: int | None = None) -> list[JobRecord]:
        scope, params = self._where_scope()
        sql = f"SELECT * FROM training_jobs{scope}"
        statuses = list(statuses or [])
        if statuses:
            sql += f"{' AND' if scope else ' WHERE'} status IN ({', '.join('?' * len(statuses))})"
            params += statuses
        sql += " ORDER BY created_at DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [JobRecord(**r) for r in self._exec(sql, params)]

    def _job_set_clause(self, fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise StoreError(f"Unknown job field(s): {', '.join(sorted(unknown))}")
        fields = {**fields, "updated_at": utcnow()}
        clause = ", ".join(f"{c} = ?" for c in fields)
        return clause, [self._enc(c, v) for c, v in fields.items()]

    def update_job(self, job_id: str, **fields: Any) -> None:
        clause, params = self._job_set_clause(fields)
        with self._transaction(write=True) as cur:
            cur.execute(self._sql(f"UPDATE training_jobs SET {clause} WHERE id = ?"), (*params, job_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"No job with id '{job_id}'.")

    def transition_job(self, job_id: str, to: str, *, expect: Iterable[str] | None = None, **fields: Any) -> bool:
        """Compare-and-set the status: succeeds only from a state that may legally reach ``to``."""
        with self._transaction(write=True) as cur:
            return self._transition(cur, job_id, to, expect, fields)

    def _transition(self, cur: Any, job_id: str, to: str, expect: Iterable[str] | None, fields: dict) -> bool:
        sources = [s for s in (expect or lifecycle.sources_for(to)) if lifecycle.can_transition(s, to)]
        if not sources:
            return False
        now = utcnow()
        clause, params = self._job_set_clause({**fields, "status": to})
        extra = ""
        if to == lifecycle.RUNNING:
            extra = ", started_at = COALESCE(started_at, ?)"
            params.append(self._enc_time(now))
        elif to in lifecycle.TERMINAL:
            extra = ", completed_at = COALESCE(completed_at, ?)"
            params.append(self._enc_time(now))
        sql = (
            f"UPDATE training_jobs SET {clause}{extra} WHERE id = ? "
            f"AND status IN ({', '.join('?' * len(sources))})"
        )
        cur.execute(self._sql(sql), (*params, job_id, *sources))
        return cur.rowcount == 1

    def complete_job(self, job_id: str, model: ModelRecord | None, **fields: Any) -> bool:
        """completing -> completed and the registry row, in one transaction: a model is registered exactly once."""
        with self._transaction(write=True) as cur:
            if not self._transition(cur, job_id, lifecycle.COMPLETED, [lifecycle.COMPLETING], fields):
                return False
            if model is not None:
                values = model.model_dump()
                values["created_at"] = values.get("created_at") or utcnow()
                values.update({k: v for k, v in self._owner().items() if v is not None})
                self._insert(cur, "llm_models", values)
        return True

    # -- metrics ---------------------------------------------------------------------------------------
    def _upsert(self, table: str, keys: tuple[str, ...], allowed: tuple[str, ...], job_id: str,
                rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        cols = [c for c in allowed if any(r.get(c) is not None for r in rows)]
        all_cols = ["job_id", *keys[1:], "timestamp", *cols]
        updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {table}.{c})" for c in cols) or "timestamp = excluded.timestamp"
        sql = (
            f"INSERT INTO {table} ({', '.join(all_cols)}) VALUES ({', '.join('?' * len(all_cols))}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
        now = utcnow()
        params = []
        for r in rows:
            ts = r.get("timestamp") or now
            params.append(
                (job_id, *(r[k] for k in keys[1:]), self._enc("timestamp", ts), *(self._enc(c, r.get(c)) for c in cols))
            )
        with self._transaction(write=True) as cur:
            cur.executemany(self._sql(sql), params)
        return len(rows)

    def upsert_metrics(self, job_id: str, rows: list[dict[str, Any]]) -> int:
        return self._upsert("training_metrics", ("job_id", "step"), METRIC_COLUMNS, job_id, rows)

    def get_metrics(
        self, job_id: str, *, since_step: int | None = None, limit: int | None = None, offset: int = 0,
        columns: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        _, sql, params = self._metric_query(job_id, since_step, columns)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return self._exec(sql, params)

    def get_metric_tuples(
        self, job_id: str, *, since_step: int | None = None, columns: Iterable[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """(step, *columns) as the driver returns them, without decoding each value: the monitor turns a long
        run's first read (hundreds of thousands of rows) into arrays at once."""
        cols, sql, params = self._metric_query(job_id, since_step, columns, with_timestamp=False)
        with self._transaction() as cur:
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
        if rows and hasattr(rows[0], "keys"):  # a driver configured to return mappings
            return [tuple(r[c] for c in cols) for r in rows]
        return rows

    @staticmethod
    def _metric_query(job_id: str, since_step: int | None, columns: Iterable[str] | None,
                      with_timestamp: bool = True) -> tuple[list[str], str, list[Any]]:
        cols = ["step", *(["timestamp"] if with_timestamp else []),
                *(c for c in (columns or METRIC_COLUMNS) if c in METRIC_COLUMNS)]
        sql = f"SELECT {', '.join(cols)} FROM training_metrics WHERE job_id = ?"
        params: list[Any] = [job_id]
        if since_step is not None:
            sql += " AND step > ?"
            params.append(int(since_step))
        return cols, sql + " ORDER BY step", params

    def count_metrics(self, job_id: str) -> int:
        return self._exec("SELECT COUNT(*) AS n FROM training_metrics WHERE job_id = ?", (job_id,))[0]["n"]

    # -- predictions -----------------------------------------------------------------------------------
    def upsert_predictions(self, job_id: str, rows: list[dict[str, Any]]) -> int:
        return self._upsert(
            "training_predictions", ("job_id", "step", "sample_id"), PREDICTION_COLUMNS, job_id, rows
        )

    def get_predictions(
        self, job_id: str, *, epoch: float | None = None, since_step: int | None = None,
        sample_id: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM training_predictions WHERE job_id = ?"
        params: list[Any] = [job_id]
        if epoch is not None:
            # Epochs are fractional; "epoch 2" means everything logged while the second epoch ran.
            sql += " AND epoch > ? AND epoch <= ?"
            params += [float(epoch) - 1, float(epoch)]
        if since_step is not None:
            sql += " AND step > ?"
            params.append(int(since_step))
        if sample_id is not None:
            sql += " AND sample_id = ?"
            params.append(sample_id)
        sql += " ORDER BY step, sample_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._exec(sql, params)

    # -- errors ----------------------------------------------------------------------------------------
    def add_error(self, job_id: str, error_type: str, message: str, traceback: str | None = None,
                  hint: str | None = None) -> None:
        with self._transaction(write=True) as cur:
            self._insert(cur, "training_errors", {
                "job_id": job_id, "error_type": error_type, "error_message": message, "traceback": traceback,
                "hint": hint, "timestamp": utcnow(),
            })

    def get_errors(self, job_id: str) -> list[ErrorRecord]:
        rows = self._exec("SELECT * FROM training_errors WHERE job_id = ? ORDER BY id", (job_id,))
        return [ErrorRecord(**r) for r in rows]

    # -- models ----------------------------------------------------------------------------------------
    def add_model(self, rec: ModelRecord) -> ModelRecord:
        values = rec.model_dump()
        values["created_at"] = values.get("created_at") or utcnow()
        values.update({k: v for k, v in self._owner().items() if v is not None})
        with self._transaction(write=True) as cur:
            self._insert(cur, "llm_models", values)
        return self.get_model(rec.id)

    def get_model(self, model_id: str) -> ModelRecord:
        scope, params = self._and_scope()
        rows = self._exec(f"SELECT * FROM llm_models WHERE id = ? OR (name = ?{scope})", (model_id, model_id, *params))
        return ModelRecord(**self._one(rows, "model", model_id))

    def list_models(self) -> list[ModelRecord]:
        scope, params = self._where_scope()
        return [ModelRecord(**r) for r in self._exec(f"SELECT * FROM llm_models{scope} ORDER BY created_at DESC",
                                                     params)]

    def find_model_by_job(self, job_id: str) -> ModelRecord | None:
        rows = self._exec("SELECT * FROM llm_models WHERE source_job_id = ?", (job_id,))
        return ModelRecord(**rows[0]) if rows else None

    def update_model(self, model_id: str, **fields: Any) -> ModelRecord:
        """Set columns of one registry row (exports, hub repo, serving endpoints land in ``metadata``)."""
        unknown = set(fields) - (set(MODEL_COLUMNS) - {"id", "created_at"})
        if unknown:
            raise StoreError(f"Unknown model field(s): {', '.join(sorted(unknown))}")
        if fields:
            clause = ", ".join(f"{c} = ?" for c in fields)
            with self._transaction(write=True) as cur:
                cur.execute(self._sql(f"UPDATE llm_models SET {clause} WHERE id = ?"),
                            (*(self._enc(c, v) for c, v in fields.items()), model_id))
                if cur.rowcount == 0:
                    raise NotFoundError(f"No model with id '{model_id}'.")
        return self.get_model(model_id)

    # -- ownership -------------------------------------------------------------------------------------
    def _owner(self) -> dict[str, Any]:
        """user_id/team_id stamped on new rows; the embedded store has a single anonymous user."""
        return {}
