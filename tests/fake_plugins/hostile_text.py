"""An ops-module plugin whose every piece of text is hostile (issue 22).

Its version string, its module name, what it prints on import and during calls, its
error messages, a crash's log and the values it returns carry markup that would run
script in a browser (``<script>``, ``<img onerror>``, an attribute breakout, a
``</script>`` that closes a script element early), text that breaks XML (``]]>``,
NUL, backspace, ESC) and terminal control sequences (colours, a screen clear, an OSC
window-title change, a carriage return that overwrites the line).

Each script payload, if a browser ever ran it, leaves a mark a test can look for:
it sets ``document.title`` to a text starting with ``PWNED`` or gives ``<html>`` a
``pwned`` attribute (see tests/test_hostile_text.py).

- ``exp`` raises with the payload as its message (verdict error);
- ``log`` prints the payload to stdout and stderr, then answers correctly;
- ``add`` is off by one (verdict fail: a counterexample with a repro script);
- ``multiply`` writes the payload to stderr and kills its worker (verdict crash);
- ``sin`` returns text instead of numbers;
- with ``HOSTILE_TEXT_FAIL_START=1`` in its environment its worker cannot start (its
  ``floatx()`` raises): the payload is the reason the target could not run.
"""
import os
import sys

import numpy as np


def payload(where):
    """Terminal controls, XML breakers, then markup and script, tagged with `where`
    (under 500 characters: the harness keeps that much of a message)."""
    title = "document.title='PWNED %s'" % where
    mark = "document.documentElement.setAttribute('pwned','%s')" % where
    return ("\x1b]0;PWNED-%s\x07\x1b[2J\x1b[31m\rOVERWRITTEN\x08\x00 ]]> <!-- "
            "<script>%s</script>"
            "<img src=x onerror=\"%s\">"
            "\"'><svg onload=\"%s\">"
            "</script><script>%s</script>\x1b[0m"
            % (where, title, mark, mark, title))


__version__ = "6.6.6" + payload("version")

print(payload("import-stdout"))
sys.stderr.write(payload("import-stderr") + "\n")
if os.environ.get("HOSTILE_TEXT_FAIL_START"):  # a target that cannot start, and says why
    def floatx():
        raise RuntimeError(payload("start-error"))


def exp(x):
    raise ValueError(payload("error-message"))


def log(x):
    print(payload("call-stdout"))
    sys.stderr.write(payload("call-stderr") + "\n")
    return np.log(x)


def add(x1, x2):
    return np.add(x1, x2) + np.ones((), dtype=np.result_type(x1, x2))


def multiply(x1, x2):
    sys.stderr.write(payload("crash-log") + "\n")
    sys.stderr.flush()
    os._exit(3)


def sin(x):
    return np.array([payload("array-value")] * max(1, np.size(x)))


# The name the module gives itself: the adapter reports it as the backend library.
__name__ = "hostile_text" + payload("module-name")
