"""What the console hands the trainer: the job config file ``job.json`` (``python -m trainer --config job.json``).

Kept to pydantic and core.config so it travels in the trainer bundle to any machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.config import TrainingConfig


class SinkSpec(BaseModel):
    """Where the trainer reports. ``sqlite``: the console's own file (local jobs); ``stdout``: structured log
    lines the console pulls from the provider's log stream; ``http``: rows served on a token-protected
    endpoint; ``supabase``: team mode ingest functions with a per-job token."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sqlite", "stdout", "http", "supabase", "none"] = "sqlite"
    path: str | None = None
    url: str | None = None
    token: str | None = None
    port: int | None = None


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str
    config: TrainingConfig
    dataset_path: str = Field(description="The JSONL file as seen on the training machine")
    output_dir: str = Field(description="Checkpoints and the final adapter go here")
    sink: SinkSpec = Field(default_factory=SinkSpec)
    spool_path: str | None = None
    cost_per_hour: float = 0.0
    budget_usd: float | None = None
    max_hours: float | None = None
    heartbeat_interval_s: float = 5.0
    cancel_poll_s: float = 2.0
    system_sample_s: float = 5.0
    provider: str = "local"
    started_epoch_s: float | None = Field(default=None, description="When billing started, for cost")
    prior_cost_usd: float = Field(default=0.0, ge=0, description="Spent by earlier runs of a resumed job")

    def write(self, path: str | Path) -> Path:
        """Owner-only: in team mode the sink carries the job's ingest token."""
        p = Path(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # a spec written before (0644) is tightened too
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.model_dump_json(indent=2))
        return p

    @classmethod
    def read(cls, path: str | Path) -> "JobSpec":
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
