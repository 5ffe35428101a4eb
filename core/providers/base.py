"""The provider interface (design.md §5): every GPU source launches, reports, costs, cancels and cleans up
the same way. Providers are registered in one dict; SDKs are imported inside the provider that needs them."""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from core.errors import (
    AuthError, ConfigError, NoCapacityError, ProviderError, ProviderUnavailable, QuotaError, RateLimited,
    ResourceNotFound, UnknownProviderError,
)

# Label every resource the console creates carries, so the orphan reaper can find them.
CONSOLE_LABEL = "finetune-console"

# The features the deploy screen shows per provider (capabilities maps each to None or the reason it is missing).
CAPABILITY_LABELS: dict[str, str] = {
    "gpu": "GPU machines",
    "multi_gpu": "Several GPUs on one machine",
    "multi_node": "Several machines",
    "spot": "Spot / interruptible price",
    "budget_enforced_by_provider": "Budget enforced on the machine (even with the console closed)",
    "live_metrics": "Live metrics in the embedded mode",
    "self_release": "The machine releases itself when done",
    "artifact_download": "Model downloaded without a Hugging Face token",
}

T = TypeVar("T")


class ProviderParams(BaseModel):
    """Base for each provider's own launch parameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class GPUOffer:
    gpu_type: str  # display name, e.g. "A100 80GB"
    vram_gb: float
    price_per_hour: float | None  # USD for one GPU; None when unknown, 0 for free tiers
    provider_gpu_id: str | None = None  # the provider's own id (RunPod gpuTypeId, HF flavor, Lambda type)
    available: bool | None = None  # None: the provider does not say
    max_count: int = 1
    cloud: str | None = None  # e.g. COMMUNITY / SECURE on RunPod
    region: str | None = None
    source: str = "catalog"  # "live" when read from the provider's API just now
    notes: str | None = None


@dataclass
class ProviderRef:
    ref: str  # pod id, kernel slug, job id, instance id, pid...
    url: str | None = None
    cost_per_hour: float | None = None
    gpu_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderStatus:
    """What the provider says about a resource, mapped to the console's vocabulary.

    ``state``: provisioning | running | exited | failed | terminated | unknown.
    """

    state: str
    exit_code: int | None = None
    message: str | None = None
    cost_per_hour: float | None = None
    uptime_s: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.state in ("provisioning", "running")


@dataclass
class LaunchRequest:
    job_id: str
    job_dir: str  # console-side folder for this job (spec, logs)
    spec_path: str  # job.json
    bootstrap: str  # bash script that sets up and runs the trainer (remote providers)
    gpu_type: str | None
    gpu_count: int
    params: ProviderParams | None
    env: dict[str, str]  # secrets for the machine; never stored in the job row
    budget_usd: float | None = None
    max_hours: float | None = None
    files: dict[str, str] = field(default_factory=dict)  # name -> local path to ship (dataset, bundle)


class Provider(ABC):
    name: ClassVar[str]
    display_name: ClassVar[str]
    Params: ClassVar[type[ProviderParams]] = ProviderParams
    # feature -> None when supported, else the reason shown greyed on the deploy screen.
    capabilities: ClassVar[dict[str, str | None]] = {}
    # How a remote machine's rows reach the console in the embedded (SQLite) mode.
    report_channel: ClassVar[str] = "sqlite"
    # Whether the machine can be handed a secret (pod env, job secrets) that its owner alone can read; without it,
    # a team job's token cannot travel and the console pulls the rows through report_channel instead.
    secret_env: ClassVar[bool] = True

    def __init__(self, credentials: dict[str, str] | None = None) -> None:
        self.credentials = credentials or {}

    @classmethod
    def parse_params(cls, params: dict[str, Any] | None) -> ProviderParams:
        """The provider's settings validated; a ConfigError naming each bad field (never pydantic's own error)."""
        from pydantic import ValidationError

        from core.config import _problems_from

        try:
            return cls.Params.model_validate(params or {})
        except ValidationError as exc:
            problems = [(f"{cls.name}.{field}", msg) for field, msg in _problems_from(exc)]
            raise ConfigError(f"The {cls.display_name} settings are invalid — "
                              + "; ".join(f"{f}: {m}" for f, m in problems), problems) from None

    @abstractmethod
    def validate_credentials(self) -> dict[str, Any]:
        """A cheap real call; returns account facts to show (never the secret). Raises AuthError."""

    @abstractmethod
    def offers(self) -> list[GPUOffer]: ...

    @abstractmethod
    def launch(self, req: LaunchRequest) -> ProviderRef: ...

    @abstractmethod
    def status(self, ref: str) -> ProviderStatus: ...

    @abstractmethod
    def logs(self, ref: str, tail: int = 200) -> str: ...

    @abstractmethod
    def cost(self, ref: str) -> float | None:
        """USD spent so far on the resource, or None when the provider cannot say."""

    @abstractmethod
    def cancel(self, ref: str) -> None:
        """Stop and release; a resource that is already gone is not an error."""

    @abstractmethod
    def list_owned(self) -> list[str]:
        """Refs of live resources that carry the console's label (for the orphan reaper)."""

    def credential(self, field: str, *, hint: str) -> str:
        """A credential this provider cannot work without; AuthError saying where to set it when it is missing."""
        value = self.credentials.get(field)
        if not value:
            label = {"api_key": "API key"}.get(field, field.replace("_", " "))
            raise AuthError(f"No {self.display_name} {label} is set.", hint=hint)
        return value

    def capacity(self) -> int | None:
        """How many jobs may run at once (None: no limit the console enforces)."""
        return None

    def pull_entries(self, ref: str, after_seq: int) -> list[dict[str, Any]]:
        """Reporting rows the trainer left where only the console can fetch them (log lines, an endpoint)."""
        return []

    def request_stop(self, ref: str) -> None:
        """Ask the trainer to save a checkpoint and stop (the user cancelled); the poller kills it after a grace."""

    def list_owned_jobs(self) -> dict[str, str | None]:
        """Like ``list_owned``, with the job id each resource was launched for when its label says so."""
        return {ref: None for ref in self.list_owned()}


# -- helpers shared by the cloud providers ------------------------------------------------------------------------

def map_state(raw: str | None, table: dict[str, str], default: str = "unknown") -> str:
    """A provider's own status word mapped to ProviderStatus.state (case-insensitive)."""
    return table.get((raw or "").strip().upper(), default)


def map_http_error(provider: str, status: int, message: str, *, code: str | None = None,
                   retry_after: float | None = None) -> ProviderError:
    """One HTTP failure as the console's error, with what to do about it in the message."""
    detail = f"{provider}: {message}".rstrip(". ") + "."
    if status == 401:
        return AuthError(f"{provider} refused the API key ({message}).",
                         hint="Check the key on the Deploy page or in .streamlit/secrets.toml.")
    if status == 403:
        return AuthError(f"{provider} refused the request: {message}.",
                         hint="The account may be inactive or the key may lack a permission.")
    if status == 404:
        return ResourceNotFound(detail)
    if status == 429:
        return RateLimited(f"{provider} is rate limiting the console; it will retry.", retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(f"{provider} had a server error (HTTP {status}); it will retry.")
    if code and "capacity" in code:
        return NoCapacityError(detail, hint="Try another GPU type or region, or try again later.")
    if code and "quota" in code:
        return QuotaError(detail)
    return ProviderError(detail)


def call_with_retries(fn: Callable[[], T], *, attempts: int = 4, base_s: float = 0.5, max_s: float = 10.0,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Retry a provider call on retryable errors (429, 5xx, no route) with jittered exponential backoff.

    Only for idempotent calls: a launch that timed out may have launched.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except ProviderError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            delay = min(max_s, base_s * 2 ** attempt) * (0.5 + random.random() / 2)
            if isinstance(exc, RateLimited) and exc.retry_after:
                delay = min(max_s, max(delay, exc.retry_after))
            sleep(delay)
    raise AssertionError("unreachable")


_REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Importing a provider module registers it; the SDKs they use are imported lazily inside them.
    import importlib

    for mod in ("local", "runpod", "kaggle", "lambda_labs", "huggingface", "skypilot"):
        try:
            importlib.import_module(f"core.providers.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"core.providers.{mod}":
                raise


def provider_names() -> list[str]:
    _load_builtin()
    return list(_REGISTRY)


def provider_class(name: str) -> type[Provider]:
    _load_builtin()
    if name not in _REGISTRY:
        raise UnknownProviderError(
            f"Unknown provider '{name}'. Valid providers: {', '.join(sorted(_REGISTRY))}."
        )
    return _REGISTRY[name]


def get_provider(name: str, credentials: dict[str, str] | None = None) -> Provider:
    return provider_class(name)(credentials)
