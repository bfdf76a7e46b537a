"""The report and the console: the run's results read back, figures, the HTML pages from templates,
and `mlmi summary`."""
