"""Reads TensorBoard event files with TensorBoard's own reader, for the JVM suites to check.

Usage: read_events.py <directory of event files>
Prints one line per scalar event: tag, step and value, tab-separated.
"""

import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(directory):
    events = EventAccumulator(directory, size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    for tag in events.Tags()["scalars"]:
        for e in events.Scalars(tag):
            print(f"{tag}\t{e.step}\t{e.value!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
