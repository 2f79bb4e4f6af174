"""Where a sweep's runs execute: this machine (:mod:`.local`) or a Ray cluster (:mod:`.ray`).

Both run every run as one ``python -m bench.worker`` process (:mod:`.process`) and store it the
moment it ends, so resume, the CSVs and the report are the same whichever executor ran a sweep.
"""

from bench.executors.base import Executor, SweepInterrupted

__all__ = ["Executor", "SweepInterrupted"]
