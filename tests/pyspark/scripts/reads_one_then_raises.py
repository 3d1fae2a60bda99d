"""Reads one batch of its feed, then raises, as a script with a bug in its training step would: the JVM task is still
writing the partition's other batches (more than the feed's slots) when the process exits.
"""

import os

import spindle.data

first = next(iter(spindle.data.batches()))
rank = os.environ["SPINDLE_RANK"]
raise RuntimeError(f"rank {rank} read {len(first['label'])} rows, then its training step broke")
