"""Library shims for legacy backends.

CNTK 2.7 links ``libmpi.so.12`` and ``libmpi_cxx.so.1`` (OpenMPI 1.10). Debian's
``libopenmpi3`` (OpenMPI 4.1) provides ``.so.40`` builds that work through a private
folder of two symlinks, put on the CNTK worker's ``LD_LIBRARY_PATH`` only.
"""
from __future__ import annotations

import glob
from pathlib import Path

from conformance import envs

_SONAMES = {"libmpi.so.12": "libmpi.so.40", "libmpi_cxx.so.1": "libmpi_cxx.so.40"}
_SEARCH = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
           "/usr/lib", "/usr/local/lib"]

OPENMPI_FIX = "install OpenMPI: `apt-get install libopenmpi3` (Debian/Ubuntu)"


class ShimError(Exception):
    pass


def _find(soname: str) -> str | None:
    for folder in _SEARCH:
        hits = glob.glob(f"{folder}/{soname}")
        if hits:
            return hits[0]
    return None


def openmpi_shim() -> str:
    """Folder holding the OpenMPI 1.x soname links; raises ShimError when impossible."""
    folder = envs.cache_root() / "shims" / "openmpi"
    folder.mkdir(parents=True, exist_ok=True)
    for legacy, modern in _SONAMES.items():
        source = _find(modern)
        if source is None:
            raise ShimError(f"CNTK needs OpenMPI ({modern} not found); {OPENMPI_FIX}")
        link = folder / legacy
        if link.is_symlink() or link.exists():
            if Path(link.resolve()) == Path(source).resolve():
                continue
            link.unlink(missing_ok=True)
        try:
            link.symlink_to(source)
        except FileExistsError:  # another run's worker made it at the same moment
            pass
    return str(folder)
