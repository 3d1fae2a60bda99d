"""The process each task of :func:`spindle.run` starts: runs the pickled function or the shipped script, and leaves
for the JVM task what it needs: ``traceback.txt`` when it raised, ``result.bin`` (rank 0's return value).

Run as ``python -m spindle._worker`` in the task's folder (``SPINDLE_RUN_DIR``), with TF_CONFIG set.
"""

import os
import pickle
import runpy
import sys
import traceback


def _finish(code: int) -> None:
    # TensorFlow's collective and server threads can keep an interpreter from exiting once the work is done:
    # flush and leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    run_dir = os.environ["SPINDLE_RUN_DIR"]
    rank = int(os.environ["SPINDLE_RANK"])
    with open(os.path.join(run_dir, "payload.bin"), "rb") as f:
        kind, *rest = pickle.load(f)
    try:
        if kind == "function":
            fn, args, kwargs = rest
            result = fn(*args, **kwargs)
        else:
            source, name, argv = rest
            path = os.path.join(run_dir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(source)
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
