//go:build tools

// Package tools keeps the helm command built by scripts/build-helm.sh in the
// module graph so that go.mod and go.sum stay tidy.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
