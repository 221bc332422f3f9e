"""Command-line stage: the ``darkconv`` click group, one module per command.

``main`` is the one place where library errors become messages and exit codes; ``options`` holds the
options commands share.
"""
