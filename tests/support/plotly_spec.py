"""Reading the Plotly figures a page sent, as AppTest holds them."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np


def charts(at: Any) -> dict[str, dict]:
    """Every st.plotly_chart of the page as its figure dict, by the key it was drawn with."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def values(v: Any) -> np.ndarray:
    """A trace's x or y as an array: Plotly ships numpy arrays as base64 typed arrays ({dtype, bdata})."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)
