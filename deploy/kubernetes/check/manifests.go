package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// doc is one YAML document of a manifest file, decoded strictly into its Kubernetes API type.
type doc struct {
	File  string
	Index int // 0-based position in its file
	Kind  string
	Obj   any
}

func (d doc) where() string { return fmt.Sprintf("%s#%d (%s)", d.File, d.Index, d.Kind) }

// kinds maps apiVersion/kind to a constructor of its served k8s.io/api type. A kind not listed is an
// error: every manifest we ship is checked against its real type.
var kinds = map[string]func() any{
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// splitDocs splits a multi-document YAML stream on lines that are exactly "---". Documents holding
// only comments or blank lines are dropped.
func splitDocs(data []byte) [][]byte {
	var out [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			out = append(out, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return out
}

func hasContent(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// decodeStrict decodes one document into its API type. Unknown fields, duplicate keys and type
// mismatches are errors (sigs.k8s.io/yaml.UnmarshalStrict: YAML -> JSON, then a decoder that
// disallows unknown fields).
func decodeStrict(file string, index int, data []byte) (doc, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return doc{}, fmt.Errorf("%s#%d: not YAML: %w", file, index, err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return doc{}, fmt.Errorf("%s#%d: apiVersion and kind are required", file, index)
	}
	mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return doc{}, fmt.Errorf("%s#%d: %s %s is not a kind this repository ships", file, index, tm.APIVersion, tm.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return doc{}, fmt.Errorf("%s#%d (%s): %w", file, index, tm.Kind, err)
	}
	return doc{File: file, Index: index, Kind: tm.Kind, Obj: obj}, nil
}

// loadDir decodes every *.yaml file directly in dir (sorted by name).
func loadDir(dir string) ([]doc, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml manifests", dir)
	}
	var docs []doc
	var errs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, d := range splitDocs(data) {
			dd, err := decodeStrict(filepath.Base(f), i, d)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			docs = append(docs, dd)
		}
	}
	if len(errs) > 0 {
		return docs, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return docs, nil
}
