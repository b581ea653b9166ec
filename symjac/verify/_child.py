"""The child process that runs the user's NumPy or C code for ``symjac verify``.

Started by :mod:`symjac.verify.sandbox` as ``python _child.py REQUEST_FD RESPONSE_FD
MEMORY_BYTES OUTPUT_BYTES``; it imports only the standard library and NumPy. Its stdout and
stderr are a file the parent reads afterwards, so whatever the user's code prints (Python
or C) never reaches symjac's own output. Messages are frames: a 4-byte length, a JSON
header, then the raw bytes of the arrays the header describes (no pickle). Limits are set
before any user code runs: address space (a huge allocation fails inside the child),
output file size, no core files, and the process dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import inspect
import io
import json
import os
import resource
import signal
import struct
import sys
import warnings

import numpy as np

MAX_RESULT = 1 << 22  # elements of a result sent back; larger ones are described only


class Capped(io.TextIOBase):
    """A text stream that passes the first ``limit`` characters on and counts the rest."""

    def __init__(self, stream: io.TextIOBase, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.count = self.written = self.dropped_lines = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.written
        self.count += len(text)
        kept = text[:max(room, 0)]
        self.dropped_lines += text.count("\n", len(kept))
        if kept:
            try:
                self.stream.write(kept)
                self.stream.flush()
                self.written += len(kept)
            except OSError:  # the file size limit: keep counting
                self.dropped_lines += kept.count("\n")
        return len(text)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None


def read_frame(fd: int) -> tuple[dict, list[np.ndarray]]:
    size = struct.unpack(">I", _read(fd, 4))[0]
    header = json.loads(_read(fd, size))
    arrays = []
    for spec in header.get("arrays", []):
        dtype = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        raw = _read(fd, count * dtype.itemsize)
        arrays.append(np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).copy())
    return header, arrays


def _read(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, header: dict, arrays: tuple[np.ndarray, ...] = ()) -> None:
    header = dict(header, arrays=[{"dtype": a.dtype.str, "shape": list(a.shape)}
                                  for a in arrays])
    text = json.dumps(header).encode()
    data = b"".join([struct.pack(">I", len(text)), text]
                    + [np.ascontiguousarray(a).tobytes() for a in arrays])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def fatal(exc: BaseException) -> dict | None:
    """What ends the run rather than count as the code refusing an input."""
    if isinstance(exc, SystemExit):
        return {"kind": "fatal", "text": f"called sys.exit({exc.code!r})"}
    if isinstance(exc, KeyboardInterrupt):
        return {"kind": "fatal", "text": "raised KeyboardInterrupt"}
    if isinstance(exc, MemoryError):
        return {"kind": "fatal", "text": "ran out of memory (MemoryError: the limit is "
                "the child process's address space)"}
    if not isinstance(exc, Exception):
        return {"kind": "fatal", "text": f"raised {type(exc).__name__}"}
    return None


class Runner:
    def __init__(self) -> None:
        self.func = None
        self.c_func = None

    def load_py(self, header: dict) -> dict:
        path, name = header["path"], header["name"]
        folder = os.path.dirname(os.path.abspath(path))
        sys.path.insert(0, folder)  # so the file can import its neighbours
        spec = importlib.util.spec_from_file_location("_symjac_user_code", path)
        if spec is None or spec.loader is None:
            return {"kind": "error", "text": f"cannot import {path}"}
        module = importlib.util.module_from_spec(spec)
        sys.modules["_symjac_user_code"] = module
        note = ""
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            where = f" line {exc.lineno}" if exc.lineno is not None else ""
            return {"kind": "error", "text": f"{path}{where}: syntax error: {exc.msg}"}
        except BaseException as exc:  # noqa: BLE001 - whatever the import does is reported
            bad = fatal(exc)
            if bad is not None and not isinstance(exc, SystemExit):
                return bad
            if isinstance(exc, SystemExit) or not callable(getattr(module, name, None)):
                return {"kind": "error", "text": f"importing {path} raised {one_line(exc)}"}
            # a pasted snippet's demo code failed after the function was defined
            note = (f"importing {path} raised {one_line(exc)} after {name} was defined; "
                    f"{name} is judged as defined by then")
        if not hasattr(module, name):
            return {"kind": "error", "text": f"{path} has no {name!r}"}
        func = getattr(module, name)
        if not callable(func):
            return {"kind": "error",
                    "text": f"{path}:{name} is not callable (it is a {type(func).__name__})"}
        self.func = func
        try:
            params = [{p.VAR_KEYWORD: "**", p.VAR_POSITIONAL: "*"}.get(p.kind, "") + p.name
                      for p in inspect.signature(func).parameters.values()]
        except (TypeError, ValueError):
            params = []
        return {"kind": "ok", "params": params, "note": note}

    def load_c(self, header: dict) -> dict:
        try:
            lib = ctypes.CDLL(header["path"])
            func = getattr(lib, header["name"])
        except (OSError, AttributeError) as exc:
            return {"kind": "error", "text": one_line(exc)}
        pointer = ctypes.POINTER(ctypes.c_double)
        func.argtypes = [pointer if kind == "array" else ctypes.c_double
                         for kind in header["args"]]
        func.restype = None
        self.c_func = func
        return {"kind": "ok"}

    def call(self, header: dict, arrays: list[np.ndarray]) -> tuple[dict, tuple]:
        x, *rest = arrays
        kwargs = dict(zip(header["array_names"], rest))
        kwargs.update(header["scalars"])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = self.func(x, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
                return fatal(exc) or {"kind": "raised", "text": one_line(exc)}, ()
            if out is None:
                return {"kind": "problem", "text": "returned None (is a return missing?)"}, ()
            try:
                arr = np.asarray(out)
                if arr.dtype.kind == "O":
                    arr = arr.astype(float)
            except BaseException as exc:  # noqa: BLE001 - e.g. a ragged list
                return fatal(exc) or {"kind": "problem", "text": f"returned "
                                      f"{type(out).__name__}, not an array of numbers"}, ()
        return self.result(arr, type(out).__name__)

    def result(self, arr: np.ndarray, kind: str) -> tuple[dict, tuple]:
        if arr.dtype.kind not in "fiubc":
            return {"kind": "problem", "text": f"returned {kind} of {arr.dtype}, not numbers"}, ()
        if arr.size > MAX_RESULT:
            return {"kind": "problem", "text": f"returned shape {tuple(arr.shape)}"}, ()
        if arr.dtype.kind in "iub":
            arr = arr.astype(float)
        elif arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
            arr = arr.astype(np.float64)  # long double: judged as float64
        return {"kind": "ok"}, (arr,)

    def call_c(self, header: dict, arrays: list[np.ndarray]) -> tuple[dict, tuple]:
        x, *vectors = arrays
        outs = []
        pointer = ctypes.POINTER(ctypes.c_double)
        for fill in (np.frombuffer(bytes.fromhex(header["sentinel"]), dtype="<f8")[0], 0.0):
            buffer = np.full(header["out_size"], fill, dtype=np.float64)
            xs = np.array(x, dtype=np.float64)
            args = [xs.ctypes.data_as(pointer)]
            args += [ctypes.c_double(v) for v in header["scalars"]]
            args += [np.ascontiguousarray(v).ctypes.data_as(pointer) for v in vectors]
            args.append(buffer.ctypes.data_as(pointer))
            self.c_func(*args)
            outs.append(buffer)
        return {"kind": "ok"}, tuple(outs)


def limit(memory: int, output: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full output file: writes fail quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, output),
                         (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the parent
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main() -> None:
    requests, responses, memory, output = (int(v) for v in sys.argv[1:5])
    sys.path.pop(0)  # this file's folder: not a place the user's imports should look
    sys.dont_write_bytecode = True  # leave no __pycache__ beside the user's file
    limit(memory, output)
    sys.stdout = Capped(sys.stdout, output // 2)
    sys.stderr = Capped(sys.stderr, output // 2)
    runner = Runner()
    write_frame(responses, {"kind": "ready"})
    while True:
        try:
            header, arrays = read_frame(requests)
        except EOFError:
            return
        op = header["op"]
        if op == "load_py":
            reply, out = runner.load_py(header), ()
        elif op == "load_c":
            reply, out = runner.load_c(header), ()
        elif op == "call":
            reply, out = runner.call(header, arrays)
        elif op == "call_c":
            reply, out = runner.call_c(header, arrays)
        else:  # "printed": what Python code wrote, and C's buffers flushed to the file
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).fflush(None)
            streams = (sys.stdout, sys.stderr)
            reply = {"kind": "ok", "count": sum(s.count for s in streams),
                     "written": sum(s.written for s in streams),
                     "dropped_lines": sum(s.dropped_lines for s in streams)}
            out = ()
        write_frame(responses, reply, out)


if __name__ == "__main__":
    main()
