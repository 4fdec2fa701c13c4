"""What the SQLite and PostgreSQL stores share, written once behind a small ``Dialect``:
reads, filters, verification, checkpoints, retention's deletes (``log``, ``filters``)
and the admin-state write loop (``admin_state``). Each store's folder keeps only
how it connects, its schema and how its writer extends the chain.
"""
