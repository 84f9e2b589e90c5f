"""HTML pages that show what a command did (the demo page)."""
