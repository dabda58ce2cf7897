"""A run's results: each cell judged from its raw files (analyzer, verdict), the incident's table apart
(incident), the run's record (records) and table (summary)."""
