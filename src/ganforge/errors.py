"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class GanforgeError(Exception):
    """Base class: a clear, one-line, user-facing problem (bad input, missing file, bad flag)."""


class DataError(GanforgeError):
    """A dataset or image could not be used."""


class CaptionError(DataError):
    """A captioned dataset has no usable captions (none found, none readable, none non-empty)."""


class WeightsError(GanforgeError):
    """Pretrained weights are missing, corrupt, or of the wrong layout."""


class CheckpointError(GanforgeError):
    """A run directory or checkpoint is missing, truncated or incompatible."""


# errno values that the user's environment causes (a full disk, a read-only mount, a missing or
# forbidden path): the CLI reports them in one line, never with a traceback
ENVIRONMENT_ERRNOS = frozenset({"ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "ENOENT", "ENOTDIR", "EISDIR",
                                "EEXIST", "ENAMETOOLONG", "EMFILE", "ENFILE", "EFBIG", "EIO", "ENOTEMPTY", "EXDEV"})


def os_errno(exc: BaseException) -> int | None:
    """The errno of an OSError, or of a Rust-side writer error such as safetensors' (which says
    ``... (os error 28)`` in its message); None when there is none."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    text = str(exc)
    mark = "(os error "
    if mark in text:
        digits = text[text.rindex(mark) + len(mark):].split(")", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None


def os_error_reason(exc: BaseException) -> str | None:
    """``'no space left on device'`` etc. for an environment fault, else None."""
    import errno as errno_mod
    import os

    number = os_errno(exc)
    if number is None or errno_mod.errorcode.get(number) not in ENVIRONMENT_ERRNOS:
        return None
    return os.strerror(number).lower()
