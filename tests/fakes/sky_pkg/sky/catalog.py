"""sky/catalog/__init__.py: list_accelerators, answering from the state's ``catalog`` rows (InstanceTypeInfo
fields of sky/catalog/common.py); no ``catalog`` means the hosted catalog could not be fetched (offline)."""

import collections
import json
import os

InstanceTypeInfo = collections.namedtuple(
    "InstanceTypeInfo", "cloud instance_type accelerator_name accelerator_count cpu_count device_memory memory "
                        "price spot_price region")


def list_accelerators(gpus_only=True, name_filter=None, region_filter=None, quantity_filter=None, clouds=None,
                      case_sensitive=True, all_regions=False, require_price=True):
    with open(os.environ["FTC_FAKE_SKY_STATE"], encoding="utf-8") as f:
        rows = json.load(f).get("catalog")
    if rows is None:
        raise ConnectionError("Failed to fetch common catalog common/accelerators.csv.")
    out = {}
    for r in rows:
        out.setdefault(r["accelerator_name"], []).append(InstanceTypeInfo(**r))
    return out
