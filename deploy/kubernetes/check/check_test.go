package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shipped is the manifest directory this module checks.
const shipped = ".."

func copyShipped(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, pat := range []string{"*.yaml", "config/*.json"} {
		files, err := filepath.Glob(filepath.Join(shipped, pat))
		if err != nil || len(files) == 0 {
			t.Fatalf("glob %s: %v (%d files)", pat, err, len(files))
		}
		for _, f := range files {
			rel, _ := filepath.Rel(shipped, f)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// edit replaces the first occurrence of old in dir/file; the test fails if old is absent, so a
// mutation can never silently stop applying.
func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func regenerate(t *testing.T, dir string) {
	t.Helper()
	text, err := renderConfigMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "configmaps.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func findingsOf(t *testing.T, dir string) (decodeErr error, errs []string) {
	t.Helper()
	docs, err := loadDir(dir)
	if err != nil {
		return err, nil
	}
	return nil, checkSet(docs, dir)
}

func TestShippedManifestsPass(t *testing.T) {
	err, errs := findingsOf(t, shipped)
	if err != nil {
		t.Fatalf("strict decoding: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("findings on the shipped manifests:\n%s", strings.Join(errs, "\n"))
	}
}

func TestStrictDecoding(t *testing.T) {
	cases := []struct{ name, file, old, new, want string }{
		{"unknown field in a container", "deployment.yaml", "readinessProbe:", "readinesProbe:", `unknown field "readinesProbe"`},
		{"unknown field at the top", "pdb.yaml", "spec:", "extra: 1\nspec:", `unknown field "extra"`},
		{"duplicate key", "service.yaml", "  type: ClusterIP", "  type: ClusterIP\n  type: NodePort", `key "type" already set`},
		{"wrong type", "deployment.yaml", "replicas: 3", "replicas: three", "cannot unmarshal"},
		{"unknown kind", "namespace.yaml", "kind: Namespace", "kind: Namespaces", "not a kind this repository ships"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyShipped(t)
			edit(t, dir, c.file, c.old, c.new)
			err, _ := findingsOf(t, dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want a decoding error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestDeploymentRules(t *testing.T) {
	cases := []struct {
		name, file, old, new string
		regen                bool
		want                 string
	}{
		{"rollout may lose a pod", "deployment.yaml", "maxUnavailable: 0", "maxUnavailable: 1", false, "maxUnavailable: 0"},
		{"usage reporting on", "deployment.yaml", "value: \"1\"", "value: \"0\"", false, "USAGE_DISABLE"},
		{"writable root", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", false, "readOnlyRootFilesystem must be true"},
		{"capabilities kept", "deployment.yaml", `drop: ["ALL"]`, `drop: ["NET_RAW"]`, false, "drop must contain ALL"},
		{"secret in env", "deployment.yaml", "            - name: FILTERD_REPLICAS\n",
			"            - name: LEAK\n              valueFrom:\n                secretKeyRef: {name: merchant-keys, key: demo-merchant.k1}\n            - name: FILTERD_REPLICAS\n", false, "secrets are mounted as files"},
		{"readiness on health", "deployment.yaml", "path: /__filterd/ready", "path: /__health", false, "readinessProbe must be httpGet /__filterd/ready"},
		{"socket on disk", "deployment.yaml", "            medium: Memory\n            sizeLimit: 80Mi", "            sizeLimit: 80Mi", false, "medium Memory"},
		{"grace too short", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 10", false, "terminationGracePeriodSeconds 10"},
		{"replica count drift", "deployment.yaml", "replicas: 3", "replicas: 4", false, "must equal spec.replicas (4)"},
		{"optional secret", "deployment.yaml", "optional: false\n", "optional: true\n", false, "must say optional: false"},
		{"key material in git", "secret.yaml", `demo-merchant.k1: ""`, `demo-merchant.k1: "s3cr3t"`, false, "holds key material"},
		{"pdb misses the pods", "pdb.yaml", "      app.kubernetes.io/name: payments-gateway", "      app.kubernetes.io/name: other", false, "does not select"},
		{"stale configmaps", "config/filterd.json", `"drain_timeout_ms": 5000`, `"drain_timeout_ms": 4000`, false, "stale"},
		{"socket path drift", "config/krakend.json", `"socket_path": "/run/filterd/filterd.sock"`, `"socket_path": "/tmp/filterd.sock"`, true, "socket_path \"/tmp/filterd.sock\""},
		{"gateway uid not allowed", "config/filterd.json", `"allowed_uids": [10001]`, `"allowed_uids": [10003]`, true, "allowed_uids must list the gateway's runAsUser 10001"},
		{"no probe endpoint", "config/krakend.json", `"endpoint": "/__filterd/ready"`, `"endpoint": "/__ready"`, true, "no /__filterd/ready endpoint"},
		{"probe with a real backend", "config/krakend.json", `"host": ["http://127.0.0.1:10"]`, `"host": ["http://127.0.0.1:8081"]`, true, "only backend http://127.0.0.1:10"},
		{"merchant key from env", "config/filterd.json", `"secret": {"file": "/run/secrets/merchant-keys/demo-merchant.k1"}`, `"secret": {"env": "K1"}`, true, "secret from env"},
		{"no nonce journal", "config/filterd.json", `"nonce_journal": {"dir": "/run/filterd/nonces", "max_bytes": 67108864, "fsync": false},`, ``, true, "nonce_journal is required"},
		{"nonce journal off the emptyDir", "config/filterd.json", `"dir": "/run/filterd/nonces"`, `"dir": "/tmp/nonces"`, true, "is not on the socket emptyDir"},
		{"socket volume too small for the journal", "deployment.yaml", "sizeLimit: 80Mi", "sizeLimit: 32Mi", false, "sizeLimit must hold nonce_journal.max_bytes"},
		{"drain outlasts grace", "config/filterd.json", `"drain_timeout_ms": 5000`, `"drain_timeout_ms": 20000`, true, "terminationGracePeriodSeconds 30"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyShipped(t)
			edit(t, dir, c.file, c.old, c.new)
			if c.regen {
				regenerate(t, dir)
			}
			err, errs := findingsOf(t, dir)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			joined := strings.Join(errs, "\n")
			if !strings.Contains(joined, c.want) {
				t.Fatalf("want a finding containing %q, got:\n%s", c.want, joined)
			}
		})
	}
}

func TestPodmanPodChangesOnlyHostSpecifics(t *testing.T) {
	docs, err := loadDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "k1")
	if err := os.WriteFile(key, []byte("test-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	y, err := podmanPod(docs, podmanOptions{
		Images:       map[string]string{"gateway": "localhost/gw:dev", "filterd": "localhost/fd:dev"},
		BackendImage: "localhost/be:dev", BackendURL: "http://127.0.0.1:8081", BackendArgs: []string{"-listen", "127.0.0.1:8081"},
		Secrets: map[string]string{"demo-merchant.k1": key},
	}, &log)
	if err != nil {
		t.Fatal(err)
	}
	out := string(y)
	for _, want := range []string{"kind: Pod", "image: localhost/gw:dev", "image: localhost/fd:dev", "name: demo-backend",
		"http://127.0.0.1:8081", "path: /__filterd/ready", "readOnlyRootFilesystem: true", "USAGE_DISABLE",
		"demo-merchant.k1: dGVzdC1rZXk="} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered pod lacks %q", want)
		}
	}
	if strings.Contains(log.String(), "test-key") {
		t.Errorf("the substitution log shows the secret value")
	}
	for _, absent := range []string{"registry.example.com", "payments-backend.payments.svc", "test-key"} {
		if strings.Contains(out, absent) {
			t.Errorf("rendered pod still contains %q", absent)
		}
	}
}

func TestCanaryIsTheShippedPodWithNewImages(t *testing.T) {
	docs, err := loadDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	y, err := canaryDeployment(docs, map[string]string{"gateway": "registry.example.com/simpaisa/gateway:2.12.1-1.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeStrict("canary", 0, y)
	if err != nil {
		t.Fatalf("the canary does not decode strictly: %v", err)
	}
	// The canary alone, checked with the same rules, passes (it is the shipped pod).
	errs := checkSet(append([]doc{d}, nonDeployments(docs)...), shipped)
	for _, e := range errs {
		if !strings.Contains(e, "FILTERD_REPLICAS") { // 1 replica: the quota divisor is the fleet's, on purpose
			t.Errorf("canary finding: %s", e)
		}
	}
	out := string(y)
	for _, want := range []string{"name: payments-gateway-canary", "replicas: 1", "app.kubernetes.io/track: canary",
		"image: registry.example.com/simpaisa/gateway:2.12.1-1.0.1", "image: registry.example.com/simpaisa/filterd:1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("canary lacks %q", want)
		}
	}
	if strings.Contains(out, "track: stable") {
		t.Error("canary still selects the stable track")
	}
	if _, err := canaryDeployment(docs, map[string]string{"gatewya": "x:1"}); err == nil {
		t.Error("a misspelt container name was accepted")
	}
}

func nonDeployments(docs []doc) []doc {
	var out []doc
	for _, d := range docs {
		if d.Kind != "Deployment" {
			out = append(out, d)
		}
	}
	return out
}
