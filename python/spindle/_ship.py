"""What travels with a :func:`spindle.run`: the script's folder, ``py_files`` and ``archives``, packed on the driver
(:func:`pack`, into the payload the JVM passes through unread) and unpacked by each task's process (:func:`unpack`) in
its working directory. This module owns that format on both sides.
"""

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from typing import Optional, Union

from .errors import RunError

#: What a run may ship with it: the script's folder, ``py_files`` and ``archives`` together (bytes on the driver's
#: disk). The payload crosses py4j as base64 text and travels in every task of the stage, so it is no way to move data:
#: large inputs belong on storage every executor reads (HDFS, S3, a shared file system) or in ``data``.
MAX_BYTES = 64 * 1024 * 1024

# Folders never shipped with the script's: bytecode the workers' Python rebuilds, and version control.
_SKIPPED_FOLDERS = frozenset({"__pycache__", ".git"})
# What spark-submit's --py-files and --archives take.
_PY_FILE_KINDS = (".py", ".zip", ".egg", ".whl")
_ARCHIVE_KINDS = (".zip", ".tar.gz", ".tgz", ".tar")
# Where to put what is too big to ship.
_LARGE = "large inputs belong on storage every executor reads (HDFS, S3, a shared file system) or in data="
# Where py_files go, in the task's folder.
PY_FILES = "py_files"
# The names the JVM task and the worker write in the task's folder: a shipped folder may not take them.
TASK_FILES = frozenset({"payload.bin", "feed.json", "feed.spill", "feed.sock", "traceback.txt", "result.bin", PY_FILES})


def pack(
    script: Optional[str],
    ship_folder: bool,
    py_files: Union[str, Sequence[str]],
    archives: Union[str, Sequence[str]],
) -> tuple:
    """What travels with the run, as the worker unpacks it: ``(folder, py_files, archives)``.

    ``folder`` is ``(name, tar.gz bytes)`` of the script's folder (or of the script alone), None for a function;
    ``py_files`` are ``(file name, bytes)``; ``archives`` are ``(alias, file name, bytes)``. Every path is checked,
    and everything sized, before a byte is read: a wrong call fails at once, without reading a large folder.
    """
    pys = [(_existing(path, "py_files"), os.path.basename(path)) for path in _paths(py_files)]
    for path, name in pys:
        if not name.endswith(_PY_FILE_KINDS):
            raise RunError(f"spindle.run: py_files takes {', '.join(_PY_FILE_KINDS)} files, not {path}")
    packed = []
    for entry in _paths(archives):
        # spark-submit's form: PATH#ALIAS unpacks into ALIAS, PATH alone into a folder named as the file.
        path, _, alias = entry.partition("#")
        path, alias = _existing(path, "archives"), alias or os.path.basename(path)
        if not path.endswith(_ARCHIVE_KINDS):
            raise RunError(f"spindle.run: archives takes {', '.join(_ARCHIVE_KINDS)} files, not {path}")
        if alias in (".", "..") or "/" in alias or os.sep in alias:
            raise RunError(f"spindle.run: archive alias {alias!r} of {path} is not a plain folder name")
        packed.append((path, alias))
    sizes = [(path, os.path.getsize(path)) for path, _ in pys + packed]
    others = sum(size for _, size in sizes)
    if others > MAX_BYTES:
        listed = ", ".join(f"{path} ({_mib(size)})" for path, size in sizes)
        raise RunError(
            f"spindle.run: py_files and archives come to {_mib(others)}, over the {_mib(MAX_BYTES)} a run "
            f"ships: {listed}. They travel inside every task; {_LARGE}"
        )
    folder = None
    if script is not None:
        script = _existing(script, "the script")
        root = os.path.dirname(script)
        files = _folder_files(root, MAX_BYTES - others) if ship_folder else [(script, os.path.basename(script))]
        # A folder's own name, as the workers see it; the file system's root has none.
        folder = (os.path.basename(root) or "script", _tar(files))
    _check_names(folder[0] if folder else None, [name for _, name in pys], [alias for _, alias in packed])
    return (
        folder,
        [(name, _read(path)) for path, name in pys],
        [(alias, os.path.basename(path), _read(path)) for path, alias in packed],
    )


def _paths(value: Union[str, Sequence[str]]) -> list:
    """A list of paths, from a list or from spark-submit's form: one string of paths separated by commas."""
    return [p for p in value.split(",") if p] if isinstance(value, str) else list(value)


def _existing(path: str, what: str) -> str:
    """``path`` made absolute, or a RunError naming it: paths are read on the driver, before any job."""
    if not os.path.isfile(path):
        raise RunError(f"spindle.run: {what} names {path}, which is not a file on the driver")
    return os.path.abspath(path)


def _folder_files(root: str, budget: int) -> list:
    """The files and folders under ``root`` as (path, name in the archive), sized as they are found: a folder over
    ``budget`` bytes fails before it is walked further (a script in a home folder must not read the home folder).

    Symbolic links are followed, as a copy would (each real folder once: a link cycle ends); ``__pycache__`` and
    ``.git`` are left out, and so is what is not a regular file (sockets, broken links).
    """
    found, size, seen = [], 0, set()
    for path, folders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(path)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(f for f in folders if f not in _SKIPPED_FOLDERS)
        relative = os.path.relpath(path, root)
        if relative != ".":
            found.append((path, relative))
        for name in sorted(names):
            try:
                info = os.stat(os.path.join(path, name))
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            size += info.st_size
            if size > budget:
                shared = MAX_BYTES - budget
                raise RunError(
                    f"spindle.run ships the script's folder, and {root} holds more than {_mib(budget)} "
                    f"({_mib(size)} counted so far, without __pycache__ and .git"
                    + (f"; py_files and archives take {_mib(shared)} more" if shared else "")
                    + f"), over the {_mib(MAX_BYTES)} a run ships. Give the "
                    "script a folder of its own, or pass ship_folder=False to ship the script alone (py_files= ships "
                    f"modules); {_LARGE}"
                )
            found.append((os.path.join(path, name), os.path.normpath(os.path.join(relative, name))))
    return found


def _tar(files: list) -> bytes:
    """A tar.gz of ``files`` ((path, name) pairs), links dereferenced: tar keeps the files' modes, zip would not."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6, dereference=True) as tar:
        for path, name in files:
            tar.add(path, arcname=name, recursive=False)
    return buffer.getvalue()


def _check_names(folder: Optional[str], py_files: list, aliases: list) -> None:
    """The script's folder and the archives' folders lie in the task's working directory, beside the files the task
    writes there: no two may share a name. ``py_files`` share one folder: no two may share a file name."""
    taken = dict.fromkeys(TASK_FILES, "a file Spindle's task writes there")
    if folder in taken:
        raise RunError(f"spindle.run: the script's folder is named {folder!r}, as {taken[folder]}: rename the folder")
    if folder is not None:
        taken[folder] = "the script's folder"
    for alias in aliases:
        if alias in taken:
            raise RunError(
                f"spindle.run: the archive folder {alias!r} would have the name of {taken[alias]} in the task's "
                "working directory: give the archive another name with path#alias"
            )
        taken[alias] = "another archive"
    twice = sorted({name for name in py_files if py_files.count(name) > 1})
    if twice:
        raise RunError(f"spindle.run: py_files has two files named {', '.join(twice)}; they share one folder")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def unpack(run_dir: str, shipped: tuple) -> list:
    """Writes what the run ships into the task's folder (:func:`pack`); returns the ``sys.path``
    entries: the script's folder first, then py_files in their order (a ``.py`` file's folder, an archive itself)."""
    folder, py_files, archives = shipped
    paths = []
    if folder is not None:
        name, packed = folder
        paths.append(os.path.join(run_dir, name))
        _untar(packed, paths[-1])
    for name, data in py_files:
        where = os.path.join(run_dir, PY_FILES)
        os.makedirs(where, exist_ok=True)
        with open(os.path.join(where, name), "wb") as f:
            f.write(data)
        entry = where if name.endswith(".py") else os.path.join(where, name)
        if entry not in paths:
            paths.append(entry)
    for alias, name, data in archives:
        target = os.path.join(run_dir, alias)
        if name.endswith(".zip"):
            _unzip(data, target)
        else:
            _untar(data, target)
    return paths


def _untar(data: bytes, target: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        # The "data" filter (Python 3.12, and 3.9.17+ / 3.10.12+ / 3.11.4+) keeps members inside target.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:
            tar.extractall(target)


def _unzip(data: bytes, target: str) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            # extract keeps a member inside target, but drops its mode (an executable's x bit): set it back.
            path = archive.extract(info, target)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)
