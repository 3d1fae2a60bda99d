"""``spindle.data``: inside a process of :func:`spindle.run`, the task's rows as a ``tf.data.Dataset``.

The JVM task writes its partition into windows of a spill file (Spindle's runtime feed, as for ``SpindleEstimator``);
this module maps each window and yields NumPy arrays that are views of the mapped memory: no pickling, no copy on the
Python side. The first pass streams: the JVM runs at most ``num_slots`` windows ahead, and a window goes back to it
once the last array viewing it is gone (backpressure). A script that keeps arrays of every window but one (a list of
batches, a deep shuffle buffer) would leave the JVM nothing to write into: that window comes as a copy instead, handed
back at once, so the feed never stalls. Later passes (epochs) replay the spill file, optionally in a
shuffled order of batches, without reading Spark again. A pass begun before the first one ended (Keras 3's ``fit``
peeks at a batch with an iterator it drops) replays what the first read and takes its stream over.
"""

import json
import mmap
import os
import random
import socket
import struct
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Optional

import numpy as np

__all__ = ["dataset", "batches"]

_END = 2**64 - 1


def _numpy_dtype(name: str):
    if name == "bfloat16":
        import tensorflow as tf

        return tf.bfloat16.as_numpy_dtype
    return np.dtype(name)


class _Feed:
    """This process's feed: the descriptor the JVM wrote, the spill file, and the socket to the JVM's runtime."""

    def __init__(self, descriptor: dict):
        self.d = descriptor
        self.fd = os.open(descriptor["spill"], os.O_RDONLY)
        self.stride = descriptor["stride"]
        self.inputs = [
            (i["name"], _numpy_dtype(i["dtype"]), tuple(i["shape"]), i["offset"]) for i in descriptor["inputs"]
        ]
        self.windows: Optional[list] = None  # (index, rows) of every window, once the first pass has ended
        self.lock = threading.Lock()
        self.reading = threading.Lock()  # held by the pass that reads the socket, while it reads
        self.sock: Optional[socket.socket] = None
        self.seen: list = []  # (index, rows) of the windows streamed so far
        self.reader: Optional[object] = None  # the pass that reads the stream now
        self.num_slots = descriptor["num_slots"]
        self.held: set = set()  # windows still viewed by arrays of the script
        self.warned = False
        self.passes = 0  # passes begun; salts each replayed pass's shuffle

    def _map(self, index: int, rows: int) -> dict:
        window = mmap.mmap(self.fd, self.stride, offset=index * self.stride, prot=mmap.PROT_READ)
        base = np.frombuffer(window, dtype=np.uint8)
        arrays = {}
        for name, dtype, shape, offset in self.inputs:
            n = rows * int(np.prod(shape, dtype=np.int64))
            arrays[name] = base[offset : offset + n * dtype.itemsize].view(dtype).reshape((rows, *shape))
        return base, arrays

    def _release(self, index: int) -> None:
        with self.lock:
            self.held.discard(index)
            if self.sock is not None:
                try:
                    self.sock.sendall(struct.pack("<Q", index))
                except OSError:
                    pass  # the feed closed: nothing waits for this window any more

    def _recv(self) -> tuple:
        buf = b""
        while len(buf) < 16:
            chunk = self.sock.recv(16 - len(buf))
            if not chunk:
                raise RuntimeError("spindle.data: the JVM task closed the feed before its end")
            buf += chunk
        return struct.unpack("<QQ", buf)

    def batches(self, shuffle: bool = False, seed: int = 0) -> Iterator[dict]:
        """One pass: dicts of column -> NumPy view, one per batch. The first streams; the others replay the file."""
        self.passes += 1
        if self.windows is None:
            return self._stream()
        return self._replay(shuffle, seed + self.passes)

    def _replay(self, shuffle: bool, seed: int) -> Iterator[dict]:
        order = list(self.windows)
        if shuffle:
            random.Random(seed).shuffle(order)
        for index, rows in order:
            _, arrays = self._map(index, rows)
            yield arrays

    def _stream(self) -> Iterator[dict]:
        # A pass that starts while an earlier one streams takes the stream over: it replays the windows read so far
        # (they stay in the file), then reads on; the earlier pass ends when next resumed. Keras 3's fit reads a first
        # batch to build the model with an iterator it then drops (tf.data may still be prefetching through it), and
        # starts the epoch with a new one. One pass at a time reads the socket (`reading`), the newest.
        me = object()
        with self.lock:
            self.reader = me
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.d["socket"])
        position = 0
        while True:
            with self.reading:
                if self.reader is not me:
                    return
                fresh = position == len(self.seen)
                if not fresh:
                    index, rows = self.seen[position]
                elif self.windows is not None:
                    return
                else:
                    index, rows = self._recv()
                    if index == _END:
                        self.windows = self.seen
                        return
                    self.seen.append((index, rows))
            position += 1
            base, arrays = self._map(index, rows)
            if not fresh:
                del base  # read again from the file; the pass that streamed it holds or released it
                yield arrays
                del arrays
                continue
            with self.lock:
                last = len(self.held) + 1 >= self.num_slots
                if not last:
                    self.held.add(index)
            if last:
                arrays = {name: np.array(a) for name, a in arrays.items()}
                if not self.warned:
                    self.warned = True
                    print(
                        f"spindle.data: the script keeps arrays of {len(self.held)} of the feed's {self.num_slots} "
                        "windows; batches that would take the last one come as copies (keep fewer batches, copy those "
                        "you keep, or raise num_slots)",
                        file=sys.stderr,
                        flush=True,
                    )
                del base
                self._release(index)
            else:
                # The window goes back to the JVM once no array views it any more (TensorFlow may hold some).
                weakref.finalize(base, self._release, index)
                del base
            yield arrays
            del arrays


_feed: Optional[_Feed] = None


def _the_feed() -> _Feed:
    global _feed
    if _feed is None:
        run_dir = os.environ.get("SPINDLE_RUN_DIR")
        path = os.path.join(run_dir, "feed.json") if run_dir else None
        if path is None or not os.path.exists(path):
            raise RuntimeError(
                "spindle.data: this process has no Spindle feed: call it inside spindle.run(..., data=df), on a task "
                "that reads (every worker; with parameter servers, the chief)"
            )
        with open(path, encoding="utf-8") as f:
            _feed = _Feed(json.load(f))
    return _feed


def batches(shuffle: bool = False, seed: int = 0) -> Iterator[dict]:
    """One pass over this task's rows as dicts of column -> NumPy array (views of mapped memory), a batch each."""
    return _the_feed().batches(shuffle, seed)


def dataset(label: Optional[str] = None, shuffle: bool = False, seed: int = 0, repeat: bool = False):
    """This task's rows as a ``tf.data.Dataset`` of batches; each iteration (epoch) is one pass, or every pass with
    ``repeat``.

    Parameters
    ----------
    label
        A column to yield apart: ``(features, label)`` pairs, as Keras ``fit`` takes; ``features`` is the one other
        column's tensor, or a dict when there are several. Without it, dicts of column -> tensor.
    shuffle, seed
        Replayed passes visit the batches in an order shuffled per pass.
    repeat
        Pass after pass without end, as ``dataset.repeat()`` does: for a script that counts its own steps, as
        ``model.fit(ds, epochs=3, steps_per_epoch=70)`` does (without it, Keras stops once the one pass has run out
        of data). The first pass streams from Spark; the others replay the spill file, as a new iteration does. Every
        reader is fed the same number of batches per pass, so synchronous workers stay in step across passes.

    The dataset's auto-sharding is off: each task's rows are its own already.
    """
    import tensorflow as tf

    feed = _the_feed()
    spec = {name: tf.TensorSpec((None, *shape), tf.as_dtype(dtype)) for name, dtype, shape, _ in feed.inputs}
    if label is not None and label not in spec:
        raise ValueError(f"spindle.data: no column '{label}' in the feed; columns: {', '.join(spec)}")

    def structure(arrays):
        if label is None:
            return arrays
        rest = {k: v for k, v in arrays.items() if k != label}
        return (next(iter(rest.values())) if len(rest) == 1 else rest), arrays[label]

    def generate():
        for arrays in batches(shuffle, seed):
            yield structure(arrays)

    signature = structure(spec)
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    if repeat:
        # Each repetition calls generate again: a new pass, which replays the file once the first has ended.
        ds = ds.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)
