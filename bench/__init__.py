"""nc-connector benchmark (see bench/README.md)."""
