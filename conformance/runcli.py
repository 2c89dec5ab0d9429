"""Sub-commands that run suites and render results (filled in by the suites work)."""


def add_commands(commands):
    return None
