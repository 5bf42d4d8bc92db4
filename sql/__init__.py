"""SQL statements of agebatch, one per file, shipped as package data (``agebatch.sql``)."""
