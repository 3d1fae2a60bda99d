"""The process each task of :func:`spindle.run` starts: unpacks what the run ships, runs the pickled function or the
script, and leaves for the JVM task what it needs: ``traceback.txt`` when it raised, ``result.bin`` (rank 0's return
value).

Run as ``python -m spindle._worker`` in the task's folder (``SPINDLE_RUN_DIR``), with TF_CONFIG set. That folder is the
script's working directory; it holds the script's folder (under its own name), the unpacked archives (under their
names or aliases) and ``py_files/``, beside the files below, which the task and this process write.
"""

import os
import pickle
import runpy
import sys
import traceback

from ._keras3 import Keras3Guard
from ._ship import unpack


def _finish(code: int) -> None:
    # TensorFlow's collective and server threads can keep an interpreter from exiting once the work is done:
    # flush and leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    run_dir = os.environ["SPINDLE_RUN_DIR"]
    rank = int(os.environ["SPINDLE_RANK"])
    sys.meta_path.insert(0, Keras3Guard())
    with open(os.path.join(run_dir, "payload.bin"), "rb") as f:
        kind, shipped, *rest = pickle.load(f)
    try:
        paths = unpack(run_dir, shipped)
        # First on sys.path, where Python puts a script's folder and PYTHONPATH's entries; child processes (a
        # multiprocessing spawn, a subprocess running Python) get them through PYTHONPATH.
        sys.path[0:0] = paths
        if paths:
            before = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([before] if before else []))
        if kind == "function":
            fn, args, kwargs = pickle.loads(rest[0])
            result = fn(*args, **kwargs)
        else:
            name, argv = rest
            path = os.path.join(paths[0], name)
            sys.argv = [path, *argv]
            runpy.run_path(path, run_name="__main__")
            result = None
    except SystemExit as e:
        if e.code in (None, 0):
            result = None
        else:
            _fail(run_dir, f"SystemExit: {e.code}\n")
            _finish(e.code if isinstance(e.code, int) else 1)
    except BaseException:  # noqa: BLE001 (whatever the script raised is the run's error)
        _fail(run_dir, traceback.format_exc())
        _finish(1)
    if rank == 0 and result is not None:
        with open(os.path.join(run_dir, "result.bin"), "wb") as f:
            pickle.dump(result, f)
    _finish(0)


def _fail(run_dir: str, text: str) -> None:
    with open(os.path.join(run_dir, "traceback.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    sys.stderr.write(text)


if __name__ == "__main__":
    main()
