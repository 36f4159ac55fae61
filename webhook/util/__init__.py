"""Plain helpers with no knowledge of pullguard: files, JSON objects, manifests on disk, memory."""
