"""How every command fails: one line and its own exit status instead of a traceback. The group
(:mod:`bench.cli.group`) maps a locked run folder and an ``OSError`` naming a file for every command; commands
that write runs add what is saved and the command that continues (:func:`io_failure`, :func:`locked_failure`).
"""
from __future__ import annotations

import errno
import os
import shlex
import sys
from pathlib import Path

import click

from ..results import RunLocked, results_root

#: Exit status when results could not be written (sysexits' EX_IOERR) and when another process is writing
#: the run (EX_TEMPFAIL: try again later); any other error exits 1, a bad argument 2.
EXIT_IO, EXIT_LOCKED = 74, 75


class Failure(click.ClickException):
    """A one-line error with its own exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


#: What to do about an errno, in the one-line message of an OSError.
_ADVICE = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some of your disk quota",
           errno.EFBIG: "raise the file-size limit (ulimit -f)",
           errno.EACCES: "make the folder writable or give another --results",
           errno.EPERM: "make the folder writable or give another --results",
           errno.EROFS: "give a --results on a writable file system",
           errno.ENOENT: "create the folder again (was the results folder moved or removed?)"}


def _again() -> str:
    return shlex.join(["lrbench", *sys.argv[1:]])


def _run_ref(run_dir: Path, results_dir: str | None) -> str:
    """How a command names the run: its id (with --results when one was given) under the results root,
    else its folder."""
    if run_dir.parent == results_root(results_dir) / "runs":
        return shlex.join([run_dir.name, *(["--results", str(results_dir)] if results_dir else [])])
    return shlex.quote(str(run_dir))


def io_failure(e: OSError, run_dir: Path | None = None, results_dir: str | None = None,
               then: str | None = None) -> Failure:
    """The one line for an OSError: the path, the errno's meaning, what is saved, the command that continues."""
    import json
    code = errno.errorcode.get(e.errno, f"errno {e.errno}") if e.errno is not None else "no errno"
    meaning = f"{e.filename or 'a file'}: {os.strerror(e.errno) if e.errno else e.strerror or e} ({code})"
    meta = {}
    if run_dir is not None:
        try:
            meta = json.loads((run_dir / "meta.json").read_text())
        except (OSError, ValueError):
            pass
    if run_dir is None:
        saved, nxt = "Its results are not saved", _again()
    elif not meta:
        saved, nxt = f"Nothing of run {run_dir.name} is saved", _again()
    elif meta.get("status") == "complete":
        saved = f"Run {run_dir.name} is complete and saved in {run_dir} (summary.csv, epochs.parquet, meta.json)"
        nxt = f"lrbench report {_run_ref(run_dir, results_dir)}"
    else:
        done = len(list((run_dir / "parts").glob("chunk-*.json")))
        saved = f"Run {run_dir.name} has {done} of {len(meta.get('chunks', []))} chunks saved in {run_dir / 'parts'}"
        nxt = f"lrbench run --resume {_run_ref(run_dir, results_dir)}"
    advice = _ADVICE.get(e.errno, "fix the cause")
    if run_dir is None:  # commands that write outside runs take --out too
        advice = advice.replace("--results", "--results or --out")
    return Failure(f"{meaning}. {saved}; {advice}, then: {then or nxt}", EXIT_IO)


def locked_failure(e: RunLocked, todo: str) -> Failure:
    return Failure(f"{e}. {todo}", EXIT_LOCKED)




def map_errors(invoke):
    """Run ``invoke()`` (a command), ending a locked run folder or an ``OSError`` naming a file in one line."""
    try:
        return invoke()
    except RunLocked as e:
        raise locked_failure(e, "One writer at a time: try again when it has ended") from None
    except OSError as e:
        if e.filename is None:  # not about a file (a socket, a closed pipe): not ours to explain
            raise
        raise io_failure(e) from None
