"""The one way ganforge hashes and downloads files (datasets and weights share it)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_verified(url: str, target: Path, accept: Callable[[str], bool], *, progress: bool = True,
                      desc: str | None = None) -> str:
    """Stream ``url`` into a temp file beside ``target`` with a progress bar; rename it to ``target``
    only if ``accept(sha256)`` holds. Returns the sha256. A rejected or broken download is removed,
    so a half-written or wrong file never appears under the final name (OSError propagates)."""
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc or target.name, disable=not progress) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if accept(digest.hexdigest()):
            tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()
