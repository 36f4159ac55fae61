"""`pullguard check`: inputs, inventory, budget, progress."""
