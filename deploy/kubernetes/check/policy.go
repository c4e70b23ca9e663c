package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The product's rules for its own deployment, beyond the API types: fail closed, secrets as files,
// no privilege, probes as docs/deployment.md defines them, and the two configs agreeing with the pod.

const (
	gatewayName   = "gateway"
	filterdName   = "filterd"
	readyPath     = "/__filterd/ready"
	healthPath    = "/__health"
	bridgePlugin  = "simpaisa/filter-bridge"
	modifierKey   = "plugin/req-resp-modifier"
	probeRouteID  = "gateway.probe"
	unreachableBE = "http://127.0.0.1:10"
)

type findings struct{ errs []string }

func (f *findings) add(where, format string, a ...any) {
	f.errs = append(f.errs, where+": "+fmt.Sprintf(format, a...))
}

// bridgeSettings is the part of the plugin's per-endpoint settings the pod wiring depends on.
type bridgeSettings struct {
	SocketPath string `json:"socket_path"`
	RouteID    string `json:"route_id"`
	Mode       string `json:"mode"`
	DaemonUID  *int64 `json:"daemon_uid"`
	DaemonGID  *int64 `json:"daemon_gid"`
}

type krakendConfig struct {
	Endpoints []struct {
		Endpoint    string                     `json:"endpoint"`
		Method      string                     `json:"method"`
		ExtraConfig map[string]json.RawMessage `json:"extra_config"`
		Backend     []struct {
			Host []string `json:"host"`
		} `json:"backend"`
	} `json:"endpoints"`
}

type filterdConfig struct {
	Listen struct {
		Socket      string  `json:"socket"`
		AllowedUIDs []int64 `json:"allowed_uids"`
	} `json:"listen"`
	Limits struct {
		DrainTimeoutMS *int64 `json:"drain_timeout_ms"`
	} `json:"limits"`
	Filters struct {
		MerchantAuth struct {
			NonceJournal *struct {
				Dir      string `json:"dir"`
				MaxBytes *int64 `json:"max_bytes"`
			} `json:"nonce_journal"`
			Merchants map[string]struct {
				Keys []struct {
					ID     string            `json:"id"`
					Secret map[string]string `json:"secret"`
				} `json:"keys"`
			} `json:"merchants"`
		} `json:"merchant-auth"`
		RateLimit struct {
			Replicas struct {
				Env string `json:"env"`
			} `json:"replicas"`
		} `json:"rate-limit"`
	} `json:"filters"`
	Routes map[string]map[string]json.RawMessage `json:"routes"`
}

// bridgeEndpoint is one gateway endpoint that names the filter-bridge plugin.
type bridgeEndpoint struct {
	Path     string
	Settings bridgeSettings
	Hosts    []string
}

func parseKrakend(data []byte) ([]bridgeEndpoint, error) {
	var k krakendConfig
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	var out []bridgeEndpoint
	for _, e := range k.Endpoints {
		raw, ok := e.ExtraConfig[modifierKey]
		if !ok {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("endpoint %s: %s: %w", e.Endpoint, modifierKey, err)
		}
		var names []string
		if err := json.Unmarshal(m["name"], &names); err != nil {
			return nil, fmt.Errorf("endpoint %s: %s.name must be a list of plugin names", e.Endpoint, modifierKey)
		}
		var s bridgeSettings
		if raw, ok := m[bridgePlugin]; ok {
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("endpoint %s: %s: %w", e.Endpoint, bridgePlugin, err)
			}
		}
		be := bridgeEndpoint{Path: e.Endpoint, Settings: s}
		for _, b := range e.Backend {
			be.Hosts = append(be.Hosts, b.Host...)
		}
		out = append(out, be)
	}
	return out, nil
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func preStopSleep(c *corev1.Container) int64 {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0
	}
	if s := c.Lifecycle.PreStop.Sleep; s != nil {
		return s.Seconds
	}
	if e := c.Lifecycle.PreStop.Exec; e != nil && len(e.Command) == 2 && e.Command[0] == "sleep" {
		n, _ := strconv.ParseInt(e.Command[1], 10, 64)
		return n
	}
	return 0
}

func mountPath(c *corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

// checkContainer holds the rules every container of the pod obeys.
func checkContainer(f *findings, where string, c *corev1.Container) {
	w := where + " container " + c.Name
	img := c.Image
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	if !strings.Contains(img, ":") && !strings.Contains(c.Image, "@sha256:") {
		f.add(w, "image %q has no tag: pin a version", c.Image)
	} else if strings.HasSuffix(c.Image, ":latest") {
		f.add(w, "image %q uses :latest: pin a version", c.Image)
	}
	sc := c.SecurityContext
	if sc == nil {
		f.add(w, "securityContext is required")
	} else {
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			f.add(w, "securityContext.runAsNonRoot must be true")
		}
		if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			f.add(w, "securityContext.runAsUser must be a fixed non-zero UID")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			f.add(w, "securityContext.readOnlyRootFilesystem must be true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			f.add(w, "securityContext.allowPrivilegeEscalation must be false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			f.add(w, "securityContext.privileged must not be true")
		}
		dropAll := false
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Drop {
				dropAll = dropAll || c == "ALL"
			}
			if len(sc.Capabilities.Add) > 0 {
				f.add(w, "securityContext.capabilities.add must be empty")
			}
		}
		if !dropAll {
			f.add(w, "securityContext.capabilities.drop must contain ALL")
		}
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
		f.add(w, "resources.requests must set cpu and memory")
	}
	if r.Limits.Memory().IsZero() {
		f.add(w, "resources.limits.memory is required (bounded memory)")
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			f.add(w, "env %s comes from a Secret: secrets are mounted as files, never env (env dumps, crash reports)", e.Name)
		}
	}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			f.add(w, "envFrom a Secret: secrets are mounted as files, never env")
		}
	}
}

func httpGetPath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

// checkSet applies the product rules to the decoded manifests; configDir holds config/*.json.
func checkSet(docs []doc, dir string) []string {
	f := &findings{}
	var deps []*appsv1.Deployment
	var depWhere []string
	var pdbs []*policyv1.PodDisruptionBudget
	var svcs []*corev1.Service
	cms := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	for _, d := range docs {
		switch o := d.Obj.(type) {
		case *appsv1.Deployment:
			deps = append(deps, o)
			depWhere = append(depWhere, d.where())
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.Service:
			svcs = append(svcs, o)
		case *corev1.ConfigMap:
			cms[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = o
			for k, v := range o.Data {
				if len(v) > 0 {
					f.add(d.where(), "data.%s holds key material: the shipped Secret is a template, keys come from the secret store", k)
				}
			}
			for k, v := range o.StringData {
				if v != "" {
					f.add(d.where(), "stringData.%s holds key material: the shipped Secret is a template, keys come from the secret store", k)
				}
			}
		}
		if ns := metaNamespace(d.Obj); ns != "" && ns != "payments" {
			f.add(d.where(), "namespace %q: every manifest lives in namespace payments", ns)
		}
	}

	// configmaps.yaml must be exactly what the config files generate.
	want, err := renderConfigMaps(dir)
	if err != nil {
		f.add("configmaps.yaml", "%v", err)
	} else if have, err := os.ReadFile(filepath.Join(dir, "configmaps.yaml")); err != nil {
		f.add("configmaps.yaml", "%v", err)
	} else if string(have) != want {
		f.add("configmaps.yaml", "stale: it differs from config/*.json; run `cd deploy/kubernetes/check && go run . configmaps -write ..`")
	}

	if len(deps) != 1 {
		f.add(dir, "want exactly one Deployment, found %d", len(deps))
		return f.errs
	}
	dep, w := deps[0], depWhere[0]
	spec := dep.Spec
	pod := spec.Template.Spec

	// Rollout: never fewer ready pods than asked for.
	if spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || spec.Strategy.RollingUpdate == nil ||
		spec.Strategy.RollingUpdate.MaxUnavailable == nil || spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 ||
		spec.Strategy.RollingUpdate.MaxUnavailable.String() != "0" {
		f.add(w, "strategy must be RollingUpdate with maxUnavailable: 0")
	}
	replicas := int32(1)
	if spec.Replicas != nil {
		replicas = *spec.Replicas
	}
	tmplLabels := labels.Set(spec.Template.Labels)
	if sel := spec.Selector; sel == nil || !labels.SelectorFromSet(sel.MatchLabels).Matches(tmplLabels) {
		f.add(w, "spec.selector does not match the pod template's labels")
	}

	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		f.add(w, "automountServiceAccountToken must be false (the pod never talks to the API server)")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		f.add(w, "pod securityContext.seccompProfile must be RuntimeDefault")
	}
	if len(pod.InitContainers) > 0 {
		f.add(w, "initContainers: filterd is a classic sidecar (docs/deployment.md); no init containers")
	}
	for i := range pod.Containers {
		checkContainer(f, w, &pod.Containers[i])
	}
	gw := findContainer(pod.Containers, gatewayName)
	fd := findContainer(pod.Containers, filterdName)
	if gw == nil || fd == nil {
		f.add(w, "the pod needs containers %q and %q", gatewayName, filterdName)
		return f.errs
	}

	// KrakenD: usage reporting off; probes as docs/deployment.md#probes.
	if v, ok := envValue(gw, "USAGE_DISABLE"); !ok || v != "1" {
		f.add(w, "container gateway: env USAGE_DISABLE must be \"1\"")
	}
	if p := httpGetPath(gw.ReadinessProbe); p != readyPath {
		f.add(w, "container gateway: readinessProbe must be httpGet %s (got %q)", readyPath, p)
	}
	if p := httpGetPath(gw.LivenessProbe); p != healthPath {
		f.add(w, "container gateway: livenessProbe must be httpGet %s, independent of filterd (got %q)", healthPath, p)
	}
	if gw.StartupProbe == nil {
		f.add(w, "container gateway: startupProbe is required")
	}
	if fd.LivenessProbe == nil {
		f.add(w, "container filterd: livenessProbe is required")
	}

	// Volumes.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	sockVol := ""
	for _, m := range fd.VolumeMounts {
		if v, ok := vols[m.Name]; ok && v.EmptyDir != nil && mountPath(gw, m.Name) != "" {
			sockVol = m.Name
		}
	}
	if sockVol == "" {
		f.add(w, "no emptyDir volume is mounted by both gateway and filterd (the socket directory)")
		return f.errs
	}
	if vols[sockVol].EmptyDir.Medium != corev1.StorageMediumMemory {
		f.add(w, "volume %s (the socket directory) must be an emptyDir with medium Memory", sockVol)
	}
	if mountPath(gw, sockVol) != mountPath(fd, sockVol) {
		f.add(w, "volume %s is mounted at different paths in gateway and filterd", sockVol)
	}
	sockDir := mountPath(fd, sockVol)
	for _, v := range pod.Volumes {
		if v.Secret != nil && (v.Secret.Optional == nil || *v.Secret.Optional) {
			f.add(w, "volume %s: a Secret volume must say optional: false", v.Name)
		}
		if v.ConfigMap != nil && (v.ConfigMap.Optional == nil || *v.ConfigMap.Optional) {
			f.add(w, "volume %s: a ConfigMap volume must say optional: false", v.Name)
		}
		if v.ConfigMap != nil && cms[v.ConfigMap.Name] == nil {
			f.add(w, "volume %s: ConfigMap %s is not shipped", v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && secrets[v.Secret.SecretName] == nil {
			f.add(w, "volume %s: Secret %s is not shipped (as a template)", v.Name, v.Secret.SecretName)
		}
	}

	// The two configs agree with the pod and with each other.
	kdata, err1 := os.ReadFile(filepath.Join(dir, "config/krakend.json"))
	fdata, err2 := os.ReadFile(filepath.Join(dir, "config/filterd.json"))
	if err1 != nil || err2 != nil {
		f.add(dir, "config files: %v %v", err1, err2)
		return f.errs
	}
	eps, err := parseKrakend(kdata)
	if err != nil {
		f.add("config/krakend.json", "%v", err)
		return f.errs
	}
	var fc filterdConfig
	if err := json.Unmarshal(fdata, &fc); err != nil {
		f.add("config/filterd.json", "%v", err)
		return f.errs
	}
	gwUID, fdUID := int64(-1), int64(-1)
	if gw.SecurityContext != nil && gw.SecurityContext.RunAsUser != nil {
		gwUID = *gw.SecurityContext.RunAsUser
	}
	if fd.SecurityContext != nil && fd.SecurityContext.RunAsUser != nil {
		fdUID = *fd.SecurityContext.RunAsUser
	}
	if path.Dir(fc.Listen.Socket) != sockDir {
		f.add("config/filterd.json", "listen.socket %q is not in the shared socket directory %s", fc.Listen.Socket, sockDir)
	}
	allowed := false
	for _, u := range fc.Listen.AllowedUIDs {
		allowed = allowed || u == gwUID
	}
	if !allowed {
		f.add("config/filterd.json", "listen.allowed_uids must list the gateway's runAsUser %d", gwUID)
	}
	probeSeen := false
	for _, e := range eps {
		s := e.Settings
		if s.SocketPath != fc.Listen.Socket {
			f.add("config/krakend.json", "endpoint %s: socket_path %q != filterd listen.socket %q", e.Path, s.SocketPath, fc.Listen.Socket)
		}
		if s.DaemonUID != nil && *s.DaemonUID != fdUID {
			f.add("config/krakend.json", "endpoint %s: daemon_uid %d != filterd's runAsUser %d", e.Path, *s.DaemonUID, fdUID)
		}
		if _, ok := fc.Routes[s.RouteID]; !ok {
			f.add("config/krakend.json", "endpoint %s: route_id %q is not a route in config/filterd.json", e.Path, s.RouteID)
		}
		if e.Path == readyPath {
			probeSeen = true
			if s.Mode != "probe" || s.RouteID != probeRouteID || len(e.Hosts) != 1 || e.Hosts[0] != unreachableBE {
				f.add("config/krakend.json", "endpoint %s must be mode probe, route_id %s, only backend %s", readyPath, probeRouteID, unreachableBE)
			}
		}
	}
	if !probeSeen {
		f.add("config/krakend.json", "no %s endpoint: the readiness probe would not test the plugin", readyPath)
	}
	if r, ok := fc.Routes[probeRouteID]; !ok || len(r) != 0 {
		f.add("config/filterd.json", "route %s must exist with an empty filter list", probeRouteID)
	}
	keyDir := ""
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			keyDir = mountPath(fd, v.Name)
		}
	}
	for m, mer := range fc.Filters.MerchantAuth.Merchants {
		for _, k := range mer.Keys {
			if _, env := k.Secret["env"]; env {
				f.add("config/filterd.json", "merchant %s key %s: secret from env; in the pod keys are files from the Secret volume", m, k.ID)
			} else if p := k.Secret["file"]; keyDir == "" || path.Dir(p) != keyDir {
				f.add("config/filterd.json", "merchant %s key %s: secret file %q is not in the Secret volume (%s)", m, k.ID, p, keyDir)
			}
		}
	}
	// Replay protection across filterd restarts: the nonce journal on the socket's emptyDir, which
	// outlives the container, and fits in it.
	if nj := fc.Filters.MerchantAuth.NonceJournal; nj == nil {
		f.add("config/filterd.json", "merchant-auth.nonce_journal is required in the pod: without it a filterd restart forgets every nonce")
	} else {
		if !strings.HasPrefix(nj.Dir, sockDir+"/") {
			f.add("config/filterd.json", "merchant-auth.nonce_journal.dir %q is not on the socket emptyDir %s (it must outlive the container)", nj.Dir, sockDir)
		}
		maxBytes := int64(256 << 20)
		if nj.MaxBytes != nil {
			maxBytes = *nj.MaxBytes
		}
		if lim := vols[sockVol].EmptyDir.SizeLimit; lim == nil || lim.Value() < maxBytes+(1<<20) {
			f.add(w, "volume %s: sizeLimit must hold nonce_journal.max_bytes (%d) plus 1 MiB", sockVol, maxBytes)
		}
	}
	if env := fc.Filters.RateLimit.Replicas.Env; env != "" {
		if v, ok := envValue(fd, env); !ok || v != strconv.Itoa(int(replicas)) {
			f.add(w, "container filterd: env %s must equal spec.replicas (%d): rate-limit divides quotas by it", env, replicas)
		}
	}

	// Shutdown: filterd outlives the gateway's preStop, then drains within the grace period.
	drain := int64(5000)
	if fc.Limits.DrainTimeoutMS != nil {
		drain = *fc.Limits.DrainTimeoutMS
	}
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	if preStopSleep(fd) <= preStopSleep(gw) {
		f.add(w, "filterd's preStop delay (%d s) must exceed the gateway's (%d s)", preStopSleep(fd), preStopSleep(gw))
	}
	if need := preStopSleep(fd) + (drain+999)/1000 + 5; grace < need {
		f.add(w, "terminationGracePeriodSeconds %d < filterd preStop %d s + drain %d ms + 5 s", grace, preStopSleep(fd), drain)
	}

	// Disruption budget and Service select this pod.
	if len(pdbs) != 1 {
		f.add(dir, "want exactly one PodDisruptionBudget, found %d", len(pdbs))
	}
	for _, p := range pdbs {
		if p.Spec.Selector == nil || !labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(tmplLabels) {
			f.add("PodDisruptionBudget "+p.Name, "selector does not select the gateway pods")
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			f.add("PodDisruptionBudget "+p.Name, "set maxUnavailable or minAvailable")
		}
	}
	for _, s := range svcs {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(tmplLabels) {
			f.add("Service "+s.Name, "selector does not select the gateway pods")
		}
	}
	return f.errs
}

func metaNamespace(o any) string {
	switch v := o.(type) {
	case *appsv1.Deployment:
		return v.Namespace
	case *corev1.ConfigMap:
		return v.Namespace
	case *corev1.Secret:
		return v.Namespace
	case *corev1.Service:
		return v.Namespace
	case *policyv1.PodDisruptionBudget:
		return v.Namespace
	}
	return ""
}
