"""Event archive (Parquet by tenant and date) and tenant-confined SQL queries."""

from mimamori.archive.parquet import Archive, ArchiveError, QueryError, check_tenant_id

__all__ = ["Archive", "ArchiveError", "QueryError", "check_tenant_id"]
