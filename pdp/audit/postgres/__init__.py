"""The PostgreSQL decision log: several replicas writing one chain (needs psycopg)."""

from pdp.audit.postgres.admin_state import PostgresAdminState
from pdp.audit.postgres.log import PostgresDecisionLog

__all__ = ["PostgresAdminState", "PostgresDecisionLog"]
