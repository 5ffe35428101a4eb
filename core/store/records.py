"""Rows as typed records. Both engines return these, so pages and the CLI never see engine details."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    # Sortable-ish: a time component keeps listings in creation order, the random part keeps ids unguessable.
    return f"{prefix}_{utcnow().strftime('%y%m%d%H%M%S')}{secrets.token_hex(4)}"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ConfigRecord(_Record):
    id: str
    name: str
    config: dict[str, Any]
    method: str | None = None
    model_name: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class DatasetRecord(_Record):
    id: str
    name: str
    content_hash: str
    path: str
    format: str | None = None
    row_count: int = 0
    valid_rows: int = 0
    size_bytes: int = 0
    stats: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    team_id: str | None = None
    created_at: datetime | None = None


class JobRecord(_Record):
    id: str
    status: str = "queued"
    provider: str = "local"
    config: dict[str, Any] = Field(default_factory=dict)
    config_name: str | None = None
    training_config_id: str | None = None
    dataset_id: str | None = None
    model_name: str | None = None
    method: str | None = None
    provider_ref: str | None = None
    provider_params: dict[str, Any] = Field(default_factory=dict)
    gpu_type: str | None = None
    gpu_count: int = 1
    reason: str | None = None
    error_message: str | None = None
    budget_limit_usd: float | None = None
    cost_per_hour: float | None = None
    total_cost_usd: float | None = None
    estimate: dict[str, Any] = Field(default_factory=dict)
    progress: float = 0.0
    current_step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    dataset_size: int | None = None
    final_loss: float | None = None
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    cancel_requested_at: datetime | None = None
    log_path: str | None = None
    artifact_path: str | None = None
    pod_url: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def deployment_id(self) -> str:
        return self.provider_ref or self.id

    @property
    def is_terminal(self) -> bool:
        from core.lifecycle import TERMINAL

        return self.status in TERMINAL


class ModelRecord(_Record):
    id: str
    name: str
    model_type: str = "causal_lm"
    source: str = "training_job"
    source_job_id: str | None = None
    base_model: str | None = None
    training_config_id: str | None = None
    dataset_id: str | None = None
    dataset_hash: str | None = None
    dataset_size: int | None = None
    artifact_path: str | None = None
    adapters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    team_id: str | None = None
    created_at: datetime | None = None


class ErrorRecord(_Record):
    id: int | None = None
    job_id: str
    error_type: str
    error_message: str
    traceback: str | None = None
    hint: str | None = None
    timestamp: datetime | None = None


# Columns of the metric and prediction tables that writers may set (the rest are keys and timestamps).
METRIC_COLUMNS = (
    "epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "samples_per_sec", "tokens_per_sec",
    "gpu_memory_mb", "gpu_memory_total_mb", "gpu_util_pct", "gpu_temp_c", "gpu_power_w", "cpu_pct", "ram_mb",
    "cost_usd",
)
PREDICTION_COLUMNS = (
    "epoch", "prompt", "generated_text", "expected_text", "bleu", "rouge_l", "exact_match", "length_ratio",
    "scores", "generation_seconds",
)
