"""``stale experiment``: specs (the shipped ones are the YAML files of this folder), their cells,
running and launching cells, and the summary tables of an experiment folder."""
