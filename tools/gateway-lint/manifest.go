package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// gatewayImage matches the images and container names that run KrakenD (or the harness standing in
// for it in tests).
var gatewayImage = regexp.MustCompile(`(?i)krakend|gateway`)

// LintManifest warns when a deployment file starts KrakenD without USAGE_DISABLE=1: KrakenD CE then
// sends a usage report to its vendor about 5 s after start, an outbound call a payments gateway must
// not make. It reads Kubernetes YAML (any number of documents), compose files and Dockerfiles.
func LintManifest(file string, data []byte) []Finding {
	l := &linter{file: file}
	base := strings.ToLower(filepath.Base(file))
	if strings.HasPrefix(base, "dockerfile") || strings.HasSuffix(base, ".dockerfile") {
		if gatewayImage.Match(data) && !bytes.Contains(data, []byte("USAGE_DISABLE=1")) {
			l.add(Warning, "Dockerfile", "starts KrakenD without ENV USAGE_DISABLE=1")
		}
		return l.findings
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc map[string]interface{}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l.add(Error, fmt.Sprintf("document %d", i), "not valid YAML: %v", err)
			break
		}
		if services, ok := doc["services"].(map[string]interface{}); ok {
			l.compose(services)
			continue
		}
		l.kube(i, doc)
	}
	return l.findings
}

func (l *linter) compose(services map[string]interface{}) {
	for name, raw := range services {
		svc, _ := raw.(map[string]interface{})
		image, _ := svc["image"].(string)
		if !gatewayImage.MatchString(name + " " + image) {
			continue
		}
		if !envHas(svc["environment"]) {
			l.add(Warning, fmt.Sprintf("services.%s.environment", name), "starts KrakenD without USAGE_DISABLE=1")
		}
	}
}

func (l *linter) kube(doc int, m map[string]interface{}) {
	kind, _ := m["kind"].(string)
	spec, _ := m["spec"].(map[string]interface{})
	prefix := fmt.Sprintf("document %d (%s) spec", doc, kind)
	if kind != "Pod" {
		tmpl, _ := spec["template"].(map[string]interface{})
		spec, _ = tmpl["spec"].(map[string]interface{})
		prefix += ".template.spec"
	}
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]interface{})
		for i, raw := range list {
			c, _ := raw.(map[string]interface{})
			name, _ := c["name"].(string)
			image, _ := c["image"].(string)
			if !gatewayImage.MatchString(name + " " + image) {
				continue
			}
			if !envHas(c["env"]) {
				l.add(Warning, fmt.Sprintf("%s.%s[%d].env", prefix, key, i), "container %q starts KrakenD without USAGE_DISABLE=1", name)
			}
		}
	}
}

// envHas reports whether an env block (Kubernetes list of {name, value}, compose list of
// "K=V", or compose map) sets USAGE_DISABLE to 1.
func envHas(env interface{}) bool {
	switch e := env.(type) {
	case []interface{}:
		for _, item := range e {
			switch v := item.(type) {
			case string:
				if v == "USAGE_DISABLE=1" {
					return true
				}
			case map[string]interface{}:
				if v["name"] == "USAGE_DISABLE" && fmt.Sprint(v["value"]) == "1" {
					return true
				}
			}
		}
	case map[string]interface{}:
		return fmt.Sprint(e["USAGE_DISABLE"]) == "1"
	}
	return false
}
