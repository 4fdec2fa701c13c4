"""What auditors do with the log: views and exports (``auditor``), the identity
inventory, the archive of every bundle that decided, and the redaction of
configured request parts before a record is written."""
