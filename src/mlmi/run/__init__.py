"""The run's plumbing: one function per workflow step (stages), the config's meaning and start-up checks,
files in and out, seeds, the plan of a study, the results contract's names and provenance."""
