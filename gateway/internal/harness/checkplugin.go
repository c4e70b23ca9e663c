package harness

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	cmd "github.com/krakend/krakend-cobra/v2"
	"github.com/spf13/cobra"
)

// Target is the gateway a plugin is built for: its Go toolchain and its C library.
type Target struct {
	Go   string // e.g. "1.25.6"
	Libc string // "glibc-2.36" or "musl-1.2.5"
}

// VerifyPlugin checks a built plugin .so against target before it is deployed, where a mismatch
// either crashes the gateway at start ("runtime: no plugin module data", a newer toolchain) or
// makes it run without the plugin ("built with a different version of package ..."):
//   - the Go toolchain recorded in the .so is exactly target.Go;
//   - it is a -buildmode=plugin build with CGO_ENABLED=1 and without -trimpath (KrakenD releases
//     are built without it), for linux/amd64 like the gateway;
//   - its C library is the target's kind, and no symbol needs a newer glibc than the target's;
//   - every module the plugin shares with this gateway has the same version.
//
// It returns one line per problem; none means compatible.
func VerifyPlugin(path string, target Target) ([]string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Go build info of %s: %w", path, err)
	}
	var problems []string
	if want := "go" + strings.TrimPrefix(target.Go, "go"); bi.GoVersion != want {
		problems = append(problems, fmt.Sprintf("Go toolchain: plugin built with %s, the gateway with %s", bi.GoVersion, want))
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"-buildmode": "plugin", "CGO_ENABLED": "1", "-trimpath": "", "GOOS": "linux", "GOARCH": "amd64",
		"-race": "", "-msan": "", "-asan": ""}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if settings[k] != want[k] && !(want[k] == "" && settings[k] == "false") {
			problems = append(problems, fmt.Sprintf("build setting %s=%q, the gateway needs %q", k, settings[k], want[k]))
		}
	}
	libcProblems, err := checkLibc(path, target.Libc)
	if err != nil {
		return nil, err
	}
	problems = append(problems, libcProblems...)
	problems = append(problems, sharedModuleProblems(bi)...)
	return problems, nil
}

func checkLibc(path, libc string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s as ELF: %w", path, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("reading the needed libraries of %s: %w", path, err)
	}
	usesGlibc, usesMusl := false, false
	for _, l := range libs {
		usesGlibc = usesGlibc || l == "libc.so.6"
		usesMusl = usesMusl || strings.HasPrefix(l, "libc.musl-")
	}
	kind, version, _ := strings.Cut(libc, "-")
	switch kind {
	case "musl":
		if !usesMusl {
			return []string{fmt.Sprintf("C library: the gateway uses %s but the plugin links %v (build it with the KrakenD builder image)", libc, libs)}, nil
		}
		return nil, nil
	case "glibc":
	default:
		return nil, fmt.Errorf("libc %q: expected glibc-X.Y or musl-X.Y.Z", libc)
	}
	if !usesGlibc {
		return []string{fmt.Sprintf("C library: the gateway uses %s but the plugin links %v", libc, libs)}, nil
	}
	limit, ok := parseVersion(version)
	if !ok {
		return nil, fmt.Errorf("libc %q: bad glibc version", libc)
	}
	syms, err := f.ImportedSymbols()
	if err != nil {
		return nil, fmt.Errorf("reading the imported symbols of %s: %w", path, err)
	}
	newest, newestName := [2]int{}, ""
	for _, s := range syms {
		v, ok := parseVersion(strings.TrimPrefix(s.Version, "GLIBC_"))
		if !strings.HasPrefix(s.Version, "GLIBC_") || !ok {
			continue
		}
		if v[0] > newest[0] || (v[0] == newest[0] && v[1] > newest[1]) {
			newest, newestName = v, s.Name+"@"+s.Version
		}
	}
	if newest[0] > limit[0] || (newest[0] == limit[0] && newest[1] > limit[1]) {
		return []string{fmt.Sprintf("C library: the plugin needs %s, newer than the gateway's %s", newestName, libc)}, nil
	}
	return nil, nil
}

func parseVersion(s string) ([2]int, bool) {
	major, minor, ok := strings.Cut(s, ".")
	a, err1 := strconv.Atoi(major)
	if !ok {
		minor = "0"
	}
	minor, _, _ = strings.Cut(minor, ".")
	b, err2 := strconv.Atoi(minor)
	return [2]int{a, b}, err1 == nil && err2 == nil
}

// sharedModuleProblems compares the modules the plugin shares with this gateway binary.
func sharedModuleProblems(p *debug.BuildInfo) []string {
	h, ok := debug.ReadBuildInfo()
	if !ok {
		return []string{"the gateway binary has no build info to compare modules with"}
	}
	host := map[string]string{}
	for _, d := range h.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		host[d.Path] = d.Version
	}
	var out []string
	for _, d := range p.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if v, shared := host[d.Path]; shared && v != d.Version {
			out = append(out, fmt.Sprintf("module %s: plugin %s, gateway %s", d.Path, d.Version, v))
		}
	}
	sort.Strings(out)
	return out
}

var verifyTarget Target

// NewVerifyPluginCmd is `verify-plugin -g GO -l LIBC FILE.so ...`: VerifyPlugin for each file,
// [OK]/[KO] lines, exit 1 on any problem. KrakenD's check-plugin reads a go.sum; this reads the
// built artefact, which is what a wrong toolchain or flag changes.
func NewVerifyPluginCmd() cmd.Command {
	c := &cobra.Command{
		Use:     "verify-plugin [flags] plugin.so...",
		Short:   "Checks that built plugins match the gateway's toolchain, build flags and C library.",
		Example: "gateway-harness verify-plugin -g 1.25.6 -l glibc-2.36 ./out/plugins/simpaisa-plugin-filter-bridge.so",
		Run: func(c *cobra.Command, args []string) {
			if len(args) == 0 || verifyTarget.Go == "" || verifyTarget.Libc == "" {
				c.Println("verify-plugin needs -g GO_VERSION, -l LIBC and at least one plugin file")
				os.Exit(1)
			}
			failed := 0
			for _, path := range args {
				problems, err := VerifyPlugin(path, verifyTarget)
				if err != nil {
					problems = []string{err.Error()}
				}
				for _, p := range problems {
					c.Println(fmt.Sprintf("[KO] %s: %s", path, p))
				}
				if len(problems) > 0 {
					failed++
					continue
				}
				c.Println(fmt.Sprintf("[OK] %s: go%s, plugin build mode, CGO on, no -trimpath, %s", path, strings.TrimPrefix(verifyTarget.Go, "go"), verifyTarget.Libc))
			}
			if failed > 0 {
				os.Exit(1)
			}
		},
	}
	return cmd.NewCommand(c,
		cmd.StringFlagBuilder(&verifyTarget.Go, "go", "g", "", "Go version of the target gateway, e.g. 1.25.6"),
		cmd.StringFlagBuilder(&verifyTarget.Libc, "libc", "l", "", "C library of the target gateway, e.g. glibc-2.36 or musl-1.2.5"))
}
