"""The report: figures (PNG) and the rendered report.html / report.md, from results and run files only."""
