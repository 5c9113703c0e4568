"""The self-contained HTML report: the page model, its rendering (CSS/JS assets are package data
files), evaluation summaries, the page of each kind of output folder, and a local server."""
