"""`conformance validate MODULE`: how conformant is a plugin backend.

- `checks`: the import verdict, the API surface and name clashes, from check reports.
- `processes`: the checks run in isolated interpreters (pool workers).
- `suites`: the plugin's verdicts in the suites, own and shared with --against targets.
- `printing`: what the command prints.
- `command`: the subcommand's arguments and `cmd_validate`.
"""
from conformance.validate.checks import (ImportVerdict, Surface, import_verdict,
                                         keras2_surface, name_clash, ops_surface)
from conformance.validate.command import DESCRIPTION, HELP, add_arguments, cmd_validate
from conformance.validate.processes import (IMPORT_TIMEOUT_S, CheckWorker, check_plugin,
                                            stack_from_log, validate_checks)
from conformance.validate.suites import summarize_suites

__all__ = ["DESCRIPTION", "HELP", "IMPORT_TIMEOUT_S", "CheckWorker", "ImportVerdict",
           "Surface", "add_arguments", "check_plugin", "cmd_validate",
           "import_verdict", "keras2_surface", "name_clash", "ops_surface", "stack_from_log",
           "summarize_suites", "validate_checks"]
