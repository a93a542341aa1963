"""DB Sage: a DBA and database architect in a terminal, for Postgres and Supabase."""

__version__ = "0.1.0"
