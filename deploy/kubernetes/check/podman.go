package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// podmanPod turns the shipped manifests into the input of `podman kube play`, changing only what
// is specific to the test host, and says what it changed (on w):
//   - image names (images: container name -> local image);
//   - the gateway's upstream URL in krakend.json (backendURL), because the demo backend runs in the pod;
//   - the Secret's data, from files the test generated (the shipped Secret is an empty template);
//   - the Deployment becomes its pod template as a Pod (podman plays one replica either way), and
//     one container is added: the demo backend, listening where backendURL points.
//
// Everything else (probes, securityContext, volumes, env, lifecycle, both configs) is the shipped text.
type podmanOptions struct {
	Images       map[string]string
	BackendImage string
	BackendURL   string
	BackendArgs  []string
	Secrets      map[string]string // key -> file with its value
}

func podmanPod(docs []doc, o podmanOptions, w *strings.Builder) ([]byte, error) {
	var dep *appsv1.Deployment
	var out []any
	for _, d := range docs {
		switch v := d.Obj.(type) {
		case *appsv1.Deployment:
			dep = v
		case *corev1.ConfigMap:
			cm := v.DeepCopy()
			if cm.Name == "gateway-config" && o.BackendURL != "" {
				text := cm.Data["krakend.json"]
				eps, err := parseKrakend([]byte(text))
				if err != nil {
					return nil, err
				}
				seen := map[string]bool{}
				for _, e := range eps {
					for _, h := range e.Hosts {
						if h != unreachableBE && !seen[h] {
							seen[h] = true
							text = strings.ReplaceAll(text, `"`+h+`"`, `"`+o.BackendURL+`"`)
							fmt.Fprintf(w, "substituted: ConfigMap gateway-config krakend.json backend host %s -> %s\n", h, o.BackendURL)
						}
					}
				}
				cm.Data["krakend.json"] = text
			}
			out = append(out, cm)
		case *corev1.Secret:
			s := v.DeepCopy()
			keys := make([]string, 0, len(o.Secrets))
			for k := range o.Secrets {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			s.StringData = nil
			s.Data = map[string][]byte{}
			for _, k := range keys {
				b, err := os.ReadFile(o.Secrets[k])
				if err != nil {
					return nil, err
				}
				s.Data[k] = b
				fmt.Fprintf(w, "substituted: Secret %s data.%s from a file made by the test (value not shown)\n", s.Name, k)
			}
			out = append(out, s)
		}
	}
	if dep == nil {
		return nil, fmt.Errorf("no Deployment")
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Namespace: dep.Namespace, Labels: dep.Spec.Template.Labels},
		Spec:       *dep.Spec.Template.Spec.DeepCopy(),
	}
	fmt.Fprintf(w, "substituted: Deployment %s -> its pod template as Pod %s (restartPolicy %s)\n", dep.Name, dep.Name, podRestart(pod))
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		img, ok := o.Images[c.Name]
		if !ok {
			return nil, fmt.Errorf("no image given for container %s", c.Name)
		}
		fmt.Fprintf(w, "substituted: container %s image %s -> %s\n", c.Name, c.Image, img)
		c.Image = img
	}
	if o.BackendImage != "" {
		f := false
		t := true
		uid := int64(65534)
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:  "demo-backend",
			Image: o.BackendImage,
			Args:  o.BackendArgs,
			SecurityContext: &corev1.SecurityContext{
				RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: &t, ReadOnlyRootFilesystem: &t,
				AllowPrivilegeEscalation: &f, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		})
		fmt.Fprintf(w, "added: container demo-backend (%s %s), the test's upstream\n", o.BackendImage, strings.Join(o.BackendArgs, " "))
	}
	out = append(out, pod)

	var b strings.Builder
	for i, obj := range out {
		if i > 0 {
			b.WriteString("---\n")
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		b.Write(y)
	}
	return []byte(b.String()), nil
}

func podRestart(p *corev1.Pod) corev1.RestartPolicy {
	if p.Spec.RestartPolicy == "" {
		return corev1.RestartPolicyAlways
	}
	return p.Spec.RestartPolicy
}
