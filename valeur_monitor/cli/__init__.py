"""The `valeur-monitor` command line."""
