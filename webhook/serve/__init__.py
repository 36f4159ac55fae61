"""Process wiring for `pullguard serve`."""
