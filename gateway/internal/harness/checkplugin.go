package harness

import (
	"debug/buildinfo"
	"fmt"
	"runtime/debug"
	"sort"
)

// buildSettingsThatMustMatch are the build settings under which Go refuses to load a plugin into a
// host built differently ("plugin was built with a different version of package ..."), or loads it
// into a subtly different runtime. -buildmode is expected to differ (exe vs plugin).
var buildSettingsThatMustMatch = []string{"-trimpath", "-race", "-msan", "-asan", "-tags", "-gcflags", "-ldflags",
	"CGO_ENABLED", "GOARCH", "GOOS", "GOAMD64", "GOEXPERIMENT"}

// CheckPlugin compares the build info embedded in a plugin .so with the harness's own, as
// `krakend check-plugin` compares a plugin's go.sum with KrakenD's: same Go toolchain, same
// build settings, and the same version (and sum) of every module both contain. It returns one line
// per mismatch; none means compatible. It does not load the plugin (-test-plugin does).
func CheckPlugin(path string) ([]string, error) {
	p, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading build info of %s: %w", path, err)
	}
	h, ok := debug.ReadBuildInfo()
	if !ok {
		return nil, fmt.Errorf("the harness has no build info")
	}
	var problems []string
	if p.GoVersion != h.GoVersion {
		problems = append(problems, fmt.Sprintf("Go toolchain: plugin %s, harness %s", p.GoVersion, h.GoVersion))
	}
	settings := func(bi *debug.BuildInfo) map[string]string {
		m := map[string]string{}
		for _, s := range bi.Settings {
			m[s.Key] = s.Value
		}
		return m
	}
	ps, hs := settings(p), settings(h)
	if ps["-buildmode"] != "plugin" {
		problems = append(problems, fmt.Sprintf("-buildmode: %q, want plugin", ps["-buildmode"]))
	}
	for _, k := range buildSettingsThatMustMatch {
		if ps[k] != hs[k] {
			problems = append(problems, fmt.Sprintf("build setting %s: plugin %q, harness %q", k, ps[k], hs[k]))
		}
	}
	hostDeps := map[string]*debug.Module{}
	for _, d := range h.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		hostDeps[d.Path] = d
	}
	for _, d := range p.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		hd, shared := hostDeps[d.Path]
		if !shared {
			continue
		}
		if hd.Version != d.Version || (hd.Sum != "" && d.Sum != "" && hd.Sum != d.Sum) {
			problems = append(problems, fmt.Sprintf("module %s: plugin %s %s, harness %s %s", d.Path, d.Version, d.Sum, hd.Version, hd.Sum))
		}
	}
	sort.Strings(problems)
	return problems, nil
}
