"""Output formats: the check's table, JSON and SARIF, and the audit's PolicyReports."""
