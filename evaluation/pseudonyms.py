"""Keyed pseudonyms for pupil identifiers, and the secret project key they are made with.

Intake replaces every pupil identifier (a UPN or a school's own pupil number) by
``P`` + the first 16 hex digits of HMAC-SHA-256(project key, identifier). The same pupil
gets the same pseudonym in every table of a project, so tables still join, but nobody can
go back from a pseudonym to the pupil without the key.

Why a secret key. The kit used to publish ``P`` + SHA-256(salt + UPN) with the salt printed
in every report footer. A UPN is a check letter (computed from the rest), the local-authority
and school numbers, a two-digit year and a three-digit serial, so knowing a pupil's school
leaves about 15,000 candidates: hashing them all recovered the UPN in 0.08 s. An HMAC under
a random key that only the analyst holds makes that enumeration useless: without the key,
every candidate is equally likely to give any pseudonym.

Where the key lives (never in the repository, never in parameters, reports or provenance;
provenance records only :func:`key_fingerprint`):

1. the environment variable ``EVALKIT_PSEUDONYM_KEY``, if set: the one secret for every
   project (each project's key is derived from it and the project id, so projects still get
   different pseudonyms). It must then be kept secret like a password;
2. else the file ``<config>/keys/<project id>.key``, created on first use with 32 random
   bytes (written as hex) and readable by its owner only (mode 600, folders 700).
   ``<config>`` is ``$EVALKIT_CONFIG_DIR`` if set, else ``$XDG_CONFIG_HOME/evalkit``, else
   ``~/.config/evalkit`` (on Windows ``%APPDATA%\\evalkit``).

If the key is lost or changed, the same pupils get new pseudonyms: processed tables and
cached results made with the old key no longer join with new ones (the kit re-reads the raw
data, so a fresh run is complete); published reports are unaffected, as they never show
pseudonyms. Never commit the key, and never share it with the readers of a report.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import warnings
from pathlib import Path

import pandas as pd

from evaluation.errors import EvalKitError

#: Environment variable holding the one secret for every project (overrides the key files).
KEY_ENV = "EVALKIT_PSEUDONYM_KEY"
#: Environment variable naming the kit's configuration folder (the key files live below it).
CONFIG_ENV = "EVALKIT_CONFIG_DIR"
#: Fewer characters than this is not a key worth the name.
MIN_KEY_LENGTH = 16
#: Hex digits of the HMAC kept in a pseudonym: 64 bits, no collisions among a project's
#: pupils in practice (about 1 in 10^11 for 50,000 pupils).
PSEUDONYM_DIGITS = 16

_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_DERIVE_LABEL = b"evalkit pseudonym key v1\x1f"
_FINGERPRINT_LABEL = b"evalkit pseudonym key fingerprint v1\x1f"
#: Secrets read from key files, by (project id, file): each file is read once per process,
#: so a run never switches key half way through.
_FILE_KEYS: dict[tuple[str, str], bytes] = {}


class KeyFileWarning(UserWarning):
    """A pseudonym key file that other users of the computer can read or change."""


def config_dir() -> Path:
    """The kit's per-user configuration folder (see the module docstring)."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg).expanduser() / "evalkit"
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "evalkit"
    return Path.home() / ".config" / "evalkit"


def key_file(project_id: str) -> Path:
    """Where the project's key file is (used only when ``EVALKIT_PSEUDONYM_KEY`` is unset)."""
    if not _PROJECT_ID.match(project_id):
        raise EvalKitError(
            f"'{project_id}' is not a valid project id (letters, digits, - and _ only)"
        )
    return config_dir() / "keys" / f"{project_id}.key"


def key_location(project_id: str) -> str:
    """Where the project's pseudonym key comes from, for people (never the key itself)."""
    if KEY_ENV in os.environ:
        return f"the environment variable {KEY_ENV}"
    path = key_file(project_id)
    return f"the file {path}" + ("" if path.exists() else " (created on first use)")


def _checked(text: str, where: str) -> bytes:
    key = text.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise EvalKitError(
            f"the pseudonym key in {where} is {'empty' if not key else 'too short'} "
            f"({len(key)} characters; at least {MIN_KEY_LENGTH} are needed): "
            f"set a long random key, e.g. `python -c \"import secrets; "
            f"print(secrets.token_hex(32))\"`"
        )
    return key.encode("utf-8")


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` unless another process got there first.

    The key is written in full to a private temporary file, then hard-linked to ``path``:
    the link fails if ``path`` exists, so of two processes starting at once exactly one key
    wins, and nobody ever reads a half-written file.
    """
    config = path.parent.parent
    config.parent.mkdir(parents=True, exist_ok=True)
    config.mkdir(mode=0o700, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created the key first: use theirs
        except OSError:
            if os.name != "nt":
                raise
            try:  # no hard links on this drive; on Windows a rename never replaces a file
                os.rename(tmp, path)
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)


def _file_secret(project_id: str) -> bytes:
    path = key_file(project_id)
    cached = _FILE_KEYS.get((project_id, str(path)))
    if cached is not None:
        return cached
    try:
        if not path.exists():
            _create_key_file(path)
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise EvalKitError(
            f"cannot read or create the pseudonym key file {path}: {reason}"
        ) from None  # a decoding error would quote bytes of the key
    if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            f"the pseudonym key file {path} can be read or changed by other users of this "
            f"computer (mode {stat.S_IMODE(mode):o}); restrict it with `chmod 600 {path}`",
            KeyFileWarning,
            stacklevel=3,
        )
    secret = _checked(text, f"the file {path}")
    _FILE_KEYS[(project_id, str(path))] = secret
    return secret


def _project_key(project_id: str) -> bytes:
    """The key that this project's pseudonyms are made with.

    With ``EVALKIT_PSEUDONYM_KEY`` the one secret is shared by every project, so each
    project's key is derived from it and the project id (HMAC as a key-derivation step):
    the same pupil in two projects still gets two unrelated pseudonyms.
    """
    if KEY_ENV in os.environ:
        secret = _checked(os.environ[KEY_ENV], f"the environment variable {KEY_ENV}")
    else:
        secret = _file_secret(project_id)
    return hmac.new(secret, _DERIVE_LABEL + project_id.encode("utf-8"), hashlib.sha256).digest()


def key_fingerprint(project_id: str) -> str:
    """12 hex digits identifying the project's key, for cache keys and provenance.

    A one-way digest of the (256-bit derived) key under a fixed label: it tells two keys
    apart but gives no way back to the key or to any pseudonym.
    """
    return hashlib.sha256(_FINGERPRINT_LABEL + _project_key(project_id)).hexdigest()[:12]


def pseudonymise(ids: pd.Series, project_id: str, *, prefix: str = "P") -> pd.Series:
    """Replace pupil identifiers by ``prefix`` + 16 hex digits of HMAC-SHA-256(key, id).

    Identifiers are compared as text with surrounding spaces removed and letters in upper
    case ("a123 " and "A123" are the same pupil). Missing identifiers stay missing. The
    result has the index of ``ids`` and the pandas ``string`` dtype.
    """
    key = _project_key(project_id)
    uniques = ids.dropna().unique()
    mapping = {
        u: prefix + hmac.new(
            key, str(u).strip().upper().encode("utf-8"), hashlib.sha256
        ).hexdigest()[:PSEUDONYM_DIGITS]
        for u in uniques
    }
    return ids.map(mapping).astype("string")


def forget_keys() -> None:
    """Forget the keys read from files in this process (for tests that change the files)."""
    _FILE_KEYS.clear()


__all__ = [
    "CONFIG_ENV", "KEY_ENV", "KeyFileWarning", "config_dir", "forget_keys", "key_file",
    "key_fingerprint", "key_location", "pseudonymise",
]
