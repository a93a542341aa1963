"""Online migrations: *apply --online and -- sage:online (planner, executor, locks, backfill, state)."""
