// kubecheck validates the shipped Kubernetes manifests (deploy/kubernetes) strictly against the
// served k8s.io/api types and the product's deployment rules, keeps configmaps.yaml in step with
// config/*.json, and renders the pod the container tests play with podman.
//
//	kubecheck validate [DIR]                      exit 1 with every finding, 0 when clean
//	kubecheck configmaps [-write] [DIR]           print (or write) configmaps.yaml from config/*.json
//	kubecheck canary -image NAME=IMG ... [DIR]    print the one-pod canary Deployment (docs/canary.md)
//	kubecheck podman-pod -image NAME=IMG ... [-backend-image IMG -backend-url URL -backend-arg A ...]
//	                     [-secret KEY=FILE ...] [DIR]   print the podman kube play input
//
// DIR defaults to the current directory (run it in deploy/kubernetes).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
)

type kvFlag map[string]string

func (k kvFlag) String() string { return fmt.Sprint(map[string]string(k)) }
func (k kvFlag) Set(s string) error {
	n, v, ok := strings.Cut(s, "=")
	if !ok || n == "" || v == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	k[n] = v
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubecheck validate|configmaps|podman-pod [flags] [DIR]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2:]))
}

func dirArg(fs *flag.FlagSet) string {
	if fs.NArg() > 0 {
		return fs.Arg(0)
	}
	return "."
}

func run(cmd string, args []string) int {
	switch cmd {
	case "validate":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		_ = fs.Parse(args)
		dir := dirArg(fs)
		docs, err := loadDir(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: strict decoding failed:\n%v\n", err)
			return 1
		}
		if errs := checkSet(docs, dir); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, "kubecheck: "+e)
			}
			fmt.Fprintf(os.Stderr, "kubecheck: %d finding(s)\n", len(errs))
			return 1
		}
		fmt.Printf("kubecheck: %d manifests in %s: strict decoding and deployment rules OK\n", len(docs), dir)
		return 0
	case "configmaps":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		write := fs.Bool("write", false, "write configmaps.yaml instead of printing it")
		_ = fs.Parse(args)
		dir := dirArg(fs)
		text, err := renderConfigMaps(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubecheck:", err)
			return 1
		}
		if *write {
			if err := os.WriteFile(filepath.Join(dir, "configmaps.yaml"), []byte(text), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "kubecheck:", err)
				return 1
			}
			return 0
		}
		fmt.Print(text)
		return 0
	case "canary":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		images := kvFlag{}
		fs.Var(images, "image", "container=new image (repeat)")
		_ = fs.Parse(args)
		docs, err := loadDir(dirArg(fs))
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
			return 1
		}
		y, err := canaryDeployment(docs, images)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubecheck:", err)
			return 1
		}
		os.Stdout.Write(y)
		return 0
	case "liveness-exec":
		// Prints the exec liveness command of a container, one argument per line, so the container
		// tests run exactly the shipped command.
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		name := fs.String("container", "filterd", "container name")
		_ = fs.Parse(args)
		docs, err := loadDir(dirArg(fs))
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
			return 1
		}
		for _, d := range docs {
			if dep, ok := d.Obj.(*appsv1.Deployment); ok {
				c := findContainer(dep.Spec.Template.Spec.Containers, *name)
				if c == nil || c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
					fmt.Fprintf(os.Stderr, "kubecheck: container %s has no exec liveness probe\n", *name)
					return 1
				}
				for _, a := range c.LivenessProbe.Exec.Command {
					if strings.Contains(a, "\n") {
						fmt.Fprintln(os.Stderr, "kubecheck: an argument spans lines")
						return 1
					}
					fmt.Println(a)
				}
				return 0
			}
		}
		fmt.Fprintln(os.Stderr, "kubecheck: no Deployment")
		return 1
	case "podman-pod":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		o := podmanOptions{Images: kvFlag{}, Secrets: kvFlag{}}
		fs.Var(kvFlag(o.Images), "image", "container=image (repeat)")
		fs.Var(kvFlag(o.Secrets), "secret", "secret key=file with its value (repeat)")
		fs.StringVar(&o.BackendImage, "backend-image", "", "image of the demo backend container to add")
		fs.StringVar(&o.BackendURL, "backend-url", "", "upstream URL replacing the gateway config's backend host")
		var bargs listFlag
		fs.Var(&bargs, "backend-arg", "argument of the demo backend (repeat)")
		_ = fs.Parse(args)
		o.BackendArgs = bargs
		dir := dirArg(fs)
		docs, err := loadDir(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
			return 1
		}
		var log strings.Builder
		y, err := podmanPod(docs, o, &log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubecheck:", err)
			return 1
		}
		fmt.Fprint(os.Stderr, log.String())
		os.Stdout.Write(y)
		return 0
	}
	fmt.Fprintf(os.Stderr, "kubecheck: unknown command %s\n", cmd)
	return 2
}
