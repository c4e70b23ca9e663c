// Command gateway-lint finds the KrakenD configuration mistakes that make KrakenD CE serve an
// endpoint without the filter bridge, or with a weaker one, before they are deployed. KrakenD CE
// itself accepts all of them silently. See docs/operations-gateway.md.
//
//	gateway-lint [-filterd filterd.json] [-manifest FILE]... gateway.json...
//
// Every finding is one line: SEVERITY FILE JSON-PATH: what is wrong and what KrakenD would do.
// Exit status: 0 clean or warnings only, 1 any error, 2 bad usage or unreadable input.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("gateway-lint", flag.ContinueOnError)
	filterd := fs.String("filterd", "", "filterd config: check that every route the gateway uses exists there with the same filters")
	var manifests fileList
	fs.Var(&manifests, "manifest", "Kubernetes YAML, compose file or Dockerfile that starts KrakenD (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 && len(manifests) == 0 {
		fmt.Fprintln(os.Stderr, "gateway-lint: give at least one gateway config or -manifest")
		return 2
	}
	var routes map[string][]string
	if *filterd != "" {
		b, err := readFile(*filterd)
		if err == nil {
			routes, err = FilterdRoutes(b)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "gateway-lint: -filterd %s: %v\n", *filterd, err)
			return 2
		}
	}
	var findings []Finding
	for _, path := range fs.Args() {
		b, err := readFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gateway-lint:", err)
			return 2
		}
		findings = append(findings, LintGateway(path, b, routes)...)
	}
	for _, path := range manifests {
		b, err := readFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gateway-lint:", err)
			return 2
		}
		findings = append(findings, LintManifest(path, b)...)
	}
	sortFindings(findings)
	errors := 0
	for _, f := range findings {
		fmt.Println(f)
		if f.Severity == Error {
			errors++
		}
	}
	fmt.Printf("gateway-lint: %d error(s), %d warning(s)\n", errors, len(findings)-errors)
	if errors > 0 {
		return 1
	}
	return 0
}
