"""Area lint: `sage lint` (no database needed) and `*lint`, over sage_agent.sqlkit.lint.

Kept light on purpose: `sage lint` imports this package, pglast and the rules, and nothing of the session,
the renderer, psycopg or pydantic unless a database is configured (to find the pending files)."""
