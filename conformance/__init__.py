"""keras-conformance: does the same Keras code give the same numbers on every backend?

Kept import-light on purpose: the worker imports this package inside target
interpreters (Python 3.6 included), so nothing here may import newer code.
"""
__version__ = "0.1.0"
