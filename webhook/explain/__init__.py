"""`pullguard explain`: failing pods, their events, the runtime's texts, and a verdict."""
