"""JAX's persistent compilation cache, written so that no reader ever sees half an entry.

Every run on a machine shares one cache folder per target (pool.compile_caches). JAX
0.10 writes an entry in place and without a lock when the cache has no size limit
(its default, and ours): jax/_src/lru_cache.py, LRUCache.put, ``if
cache_path.exists(): return`` then ``cache_path.write_bytes(value)`` (the file lock
there is taken only when eviction is on). A process that runs out of disk or is
killed while writing leaves a truncated entry; every later process fails to read it
("Error reading persistent compilation cache entry ...: incomplete or truncated
stream", jax/_src/compiler.py, _cache_read), compiles again, and never replaces it,
since the file exists. A run reading an entry another run is writing sees the same.

`write_entries_atomically` makes put write a temporary file beside the entry and
rename it into place (atomic on POSIX): a reader finds the whole entry or none, a
writer cut short leaves only its temporary file. Nothing else of JAX changes.
"""
import os
import threading

_PATCHED = "_conformance_atomic_put"


def write_entries_atomically():
    """Patch JAX's LRUCache.put (when JAX is imported and looks as expected); True when
    the patch is in place."""
    try:
        from jax._src import lru_cache
    except ImportError:
        return False
    cache_class = getattr(lru_cache, "LRUCache", None)
    suffix = getattr(lru_cache, "_CACHE_SUFFIX", None)
    if cache_class is None or suffix is None:  # another JAX: leave it as it is
        return False
    if getattr(cache_class.put, _PATCHED, False):
        return True
    original_put = cache_class.put

    def put(self, key, value):
        path = getattr(self, "path", None)
        local = type(path).__module__ == "pathlib"  # not etils' paths to remote stores
        if getattr(self, "eviction_enabled", True) or not local:
            return original_put(self, key, value)
        if not key:
            raise ValueError("key cannot be empty")
        entry = os.path.join(os.fspath(path), key + suffix)
        if os.path.exists(entry):
            return None
        write_whole(entry, value)
        return None

    setattr(put, _PATCHED, True)
    cache_class.put = put
    return True


def write_whole(path, data):
    """Write `data` to `path` through a temporary file renamed into place."""
    tmp = "%s.%d-%d.tmp" % (path, os.getpid(), threading.get_ident())
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
