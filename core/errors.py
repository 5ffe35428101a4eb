"""One error hierarchy for everything a person can be told about.

Pages catch ``ConsoleError`` once and show its message; the CLI maps ``exit_code`` to its process status
(1 for a user error, 2 for unusable input). Anything that is *not* a ConsoleError is a bug and is shown as a
generic message with the traceback kept in the log, never on the page.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """An error whose message is fit to show to a user: it says what went wrong and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InputError(ConsoleError):
    """The input cannot be used at all (unreadable file, malformed config file)."""

    exit_code = 2


class ConfigError(ConsoleError):
    """A training config is invalid; ``problems`` lists (field, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.problems = problems or []


class NotFoundError(ConsoleError):
    """A config, job, dataset or model id that does not exist."""


class StateError(ConsoleError):
    """An action that the current state does not allow (cancel a finished job, launch twice...)."""


class DatasetError(ConsoleError):
    """The dataset does not suit what was asked of it."""


class StoreError(ConsoleError):
    """The store could not be read or written."""


class SignInError(ConsoleError):
    """Team mode: signing in, signing up or keeping the session failed."""


class ProviderError(ConsoleError):
    """A provider call failed; subclasses say why."""

    retryable = False


class AuthError(ProviderError):
    """Credentials are missing or were refused."""


class NoCapacityError(ProviderError):
    """The provider has no machine of the requested kind right now."""

    retryable = True


class QuotaError(ProviderError):
    """The account's quota or rate limit stops the call."""

    retryable = True


class RateLimited(QuotaError):
    """The provider asked us to slow down (HTTP 429); ``retry_after`` is its hint in seconds, when given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider (or the machine's report channel) failed in a way that may pass: 5xx, timeout, no route."""

    retryable = True


class LaunchError(ProviderError):
    """The machine could not be started."""


class ResourceNotFound(ProviderError):
    """The provider no longer knows the resource (already terminated, never existed)."""


class UnknownProviderError(ConsoleError):
    """A provider name that is not registered."""


class TrainerError(ConsoleError):
    """The trainer cannot run with what it was given."""
