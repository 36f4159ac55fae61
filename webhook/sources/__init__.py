"""Where a command's inputs come from: the cluster connection and the policy (file or ConfigMap)."""
