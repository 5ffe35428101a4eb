"""sky/utils/common.py: StatusRefreshMode."""

import enum


class StatusRefreshMode(enum.Enum):
    NONE = "NONE"
    AUTO = "AUTO"
    FORCE = "FORCE"
