"""How the log proves itself and keeps every acknowledged record, whatever the store.

- ``hashchain``: each record's hash covers the previous one (tampering shows);
- ``groupcommit``: the writer thread that chains a batch and commits it at once;
- ``spool``: a local file that keeps records while the store is down;
- ``checkpoint``: the head, signed from time to time (a cut-off tail shows);
- ``verify``: chain, checkpoints and retention anchor checked end to end.
"""
