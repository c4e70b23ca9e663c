package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The ConfigMaps carry config/krakend.json and config/filterd.json verbatim. configmaps.yaml is
// generated from those files (`kubecheck configmaps -write`) and validation fails when it is stale,
// so the pod, compose and the docs all run the same two files.

type cmSource struct {
	Name, Key, File, Comment string
}

var cmSources = []cmSource{
	{"gateway-config", "krakend.json", "config/krakend.json",
		"KrakenD's configuration in the pod: config/krakend.json, verbatim."},
	{"filterd-config", "filterd.json", "config/filterd.json",
		"filterd's configuration in the pod: config/filterd.json, verbatim. Merchant secrets are file\n# references into the merchant-keys Secret."},
}

const cmHeader = "# GENERATED from deploy/kubernetes/config/ by `cd deploy/kubernetes/check && go run . configmaps -write ..`; do not edit.\n"

// renderConfigMaps returns the text of configmaps.yaml for the config files under dir.
func renderConfigMaps(dir string) (string, error) {
	var b strings.Builder
	b.WriteString(cmHeader)
	for i, s := range cmSources {
		data, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			return "", err
		}
		text := strings.TrimRight(string(data), "\n")
		if strings.Contains(text, "\t") {
			return "", fmt.Errorf("%s: tabs cannot be embedded in a YAML block scalar", s.File)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# %s\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: payments\n"+
			"  labels:\n    app.kubernetes.io/name: payments-gateway\ndata:\n  %s: |\n", s.Comment, s.Name, s.Key)
		for _, line := range strings.Split(text, "\n") {
			if line == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("    " + line + "\n")
			}
		}
	}
	return b.String(), nil
}
