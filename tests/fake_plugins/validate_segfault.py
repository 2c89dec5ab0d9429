"""A plugin that segfaults while being imported."""
import ctypes

ctypes.string_at(0)  # reads address 0: SIGSEGV
