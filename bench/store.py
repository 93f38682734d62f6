"""The only writer of ``results/``: atomic files, done-markers with checksums, cell claims.

Layout and file formats: docs/results-schema.md. Every file is written to a temporary
name in its own folder and renamed, so a killed process never leaves a half-written file
under its final name; ``DONE`` is written last and lists a SHA-256 per artefact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DONE, CLAIM, ERROR, TMP_SUFFIX = "DONE", "CLAIM", "error.txt", ".tmp"
STALE_AFTER_S = 600.0  # a claim whose heartbeat is older than this is treated as abandoned


def run_id_for(cell_config: dict[str, Any]) -> str:
    """Hash of the canonical JSON of a resolved cell config: same config, same id."""
    canon = json.dumps(cell_config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _fault_point(name: str, phase: str) -> None:
    """Fault injection for the reliability tests: ``CXRBENCH_FAULT=NAME:PHASE[:once=MARKER]``
    kills this process with SIGKILL at that point (once, if a marker path is given)."""
    spec = os.environ.get("CXRBENCH_FAULT", "")
    if not spec.startswith(f"{name}:{phase}"):
        return
    marker = spec.partition(":once=")[2]
    if marker:
        if os.path.exists(marker):
            return
        Path(marker).touch()
    os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write through ``write(fh)`` to a temporary sibling, fsync, then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _fault_point(path.name, "before_rename")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    atomic_write(path, lambda fh: fh.write(data))


def write_parquet(path: Path, df: pd.DataFrame, metadata: dict[str, str] | None = None) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    atomic_write(path, lambda fh: pq.write_table(table, fh))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _alive(claim: dict[str, Any]) -> bool:
    """A claim is live while its heartbeat is recent and, on this host, its process exists."""
    if time.time() - float(claim.get("heartbeat", 0)) >= STALE_AFTER_S:
        return False
    if claim.get("host") == socket.gethostname():
        try:
            os.kill(int(claim.get("pid", -1)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, OverflowError):
            return True
    return True


class RunDir:
    """One cell's folder. Artefacts go through ``write_*``; ``finish`` writes the done-marker."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written: list[str] = []

    def _record(self, name: str) -> Path:
        self.written.append(name)
        return self.path / name

    def json(self, name: str, obj: Any) -> None:
        write_json(self._record(name), obj)

    def parquet(self, name: str, df: pd.DataFrame, metadata: dict[str, str] | None = None) -> None:
        write_parquet(self._record(name), df, metadata)

    def raw(self, name: str, data: bytes) -> None:
        atomic_write(self._record(name), lambda fh: fh.write(data))

    def finish(self) -> None:
        """Checksum every artefact, then write DONE last: only now is the cell done."""
        files = {name: sha256_file(self.path / name) for name in sorted(set(self.written))}
        write_json(self.path / DONE, {"files": files, "finished_at": time.time()})
        (self.path / ERROR).unlink(missing_ok=True)

    def fail(self, message: str) -> None:
        atomic_write(self.path / ERROR, lambda fh: fh.write(message.encode()))


class Store:
    """A study folder: ``results/<study>/``."""

    def __init__(self, study_dir: Path | str) -> None:
        self.root = Path(study_dir)
        self.runs = self.root / "runs"

    def run(self, run_id: str) -> RunDir:
        path = self.runs / run_id
        path.mkdir(parents=True, exist_ok=True)
        return RunDir(path)

    def is_done(self, run_id: str) -> bool:
        return (self.runs / run_id / DONE).is_file()

    def write_study(self, info: dict[str, Any]) -> None:
        write_json(self.root / "study.json", info)

    def write_split(self, name: str, df: pd.DataFrame) -> Path:
        """A split table, named by its content hash: written once, never overwritten."""
        path = self.root / "splits" / f"{name}.parquet"
        if not path.exists():
            write_parquet(path, df)
        return path

    # -- claims: so that two sweeps on one folder never work on the same cell --------------

    def claim(self, run_id: str, owner: str) -> bool:
        """Take the cell for ``owner``; False if another live owner holds it."""
        path = self.runs / run_id / CLAIM
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "owner": owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "heartbeat": time.time(),
        }
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                held = self.read_claim(run_id)
                if held and held.get("owner") == owner:  # a retry of our own (e.g. on Dask)
                    self._drop_leftovers(path.parent)
                    return True
                if held and _alive(held):
                    return False
                path.unlink(missing_ok=True)  # stale, dead or unreadable: recover it
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            self._drop_leftovers(path.parent)
            return True
        return False

    @staticmethod
    def _drop_leftovers(folder: Path) -> None:
        """Temporary files of a killed earlier attempt: never read, removed on a new claim."""
        for leftover in folder.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    def read_claim(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.runs / run_id / CLAIM).read_text())
        except (OSError, ValueError):
            return None

    def heartbeat(self, run_id: str, owner: str) -> None:
        held = self.read_claim(run_id)
        if held and held.get("owner") == owner:
            write_json(self.runs / run_id / CLAIM, {**held, "heartbeat": time.time()})

    def release(self, run_id: str, owner: str) -> None:
        held = self.read_claim(run_id)
        if held is None or held.get("owner") == owner:
            (self.runs / run_id / CLAIM).unlink(missing_ok=True)

    # -- reading state -----------------------------------------------------------------------

    def state(self, run_id: str) -> str:
        """done | running | failed | pending."""
        path = self.runs / run_id
        if (path / DONE).is_file():
            return "done"
        held = self.read_claim(run_id)
        if held and _alive(held):
            return "running"
        if (path / ERROR).is_file():
            return "failed"
        return "pending"

    def verify(self) -> list[str]:
        """Every mismatch between a done-marker's checksums and the files on disk."""
        problems = []
        for marker in sorted(self.runs.glob(f"*/{DONE}")):
            try:
                files = json.loads(marker.read_text())["files"]
            except (OSError, ValueError, KeyError):
                problems.append(f"{marker}: unreadable done-marker")
                continue
            for name, digest in files.items():
                path = marker.parent / name
                if not path.is_file():
                    problems.append(f"{path}: missing (listed in {marker})")
                elif sha256_file(path) != digest:
                    problems.append(
                        f"{path}: checksum mismatch (file changed after the run finished)"
                    )
        return problems
