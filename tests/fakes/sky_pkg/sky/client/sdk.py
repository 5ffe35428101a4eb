"""sky/client/sdk.py: the calls the driver reaches here rather than at the package top."""

from sky import enabled_clouds  # noqa: F401
