"""What a node adds to a pull: the kubelet's credential provider plugins (KEP-2133, KEP-4412)."""
