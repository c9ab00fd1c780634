"""Latency tables: a space's parts timed once on the device a network will run on.

`python -m search_space.latency_table` builds one (`build.py`), exports the parts as ONNX for a
device that cannot run this Python stack and imports the times its own tool reports
(`onnx_parts.py`); `table.py` is the file; `search_space.latency.predict_latency` reads it.
"""

from search_space.latency_table.table import LatencyTable, TableError, load_table

__all__ = ["LatencyTable", "TableError", "load_table"]
