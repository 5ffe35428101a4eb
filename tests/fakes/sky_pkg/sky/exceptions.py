"""The exception classes of sky/exceptions.py (skypilot 0.14.1) that the driver's callers tell apart."""


class ResourcesUnavailableError(Exception):
    pass


class ClusterDoesNotExist(ValueError):
    pass


class NoCloudAccessError(Exception):
    pass


class ApiServerConnectionError(RuntimeError):
    pass


class InvalidCloudCredentials(Exception):
    pass
