package k8s

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestManifests decodes every manifest strictly and runs every check.
func TestManifests(t *testing.T) {
	m, err := loadManifests()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := loadOptions()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(m, opts); err != nil {
				t.Error(err)
			}
		})
	}
}

// breakage is one way to break the manifests and the check that must notice.
type breakage struct {
	name  string
	check string
	apply func(m *manifests)
}

func pod(m *manifests) *corev1.PodSpec { return &m.statefulSet.Spec.Template.Spec }

func node(m *manifests) *corev1.Container {
	_, c, _ := podParts(m)
	return c
}

func setEnv(m *manifests, name, value string) {
	c := node(m)
	if e := envVar(c, name); e != nil {
		e.Value, e.ValueFrom = value, nil
		return
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

func dropEnv(m *manifests, name string) {
	c := node(m)
	for i, e := range c.Env {
		if e.Name == name {
			c.Env = append(c.Env[:i], c.Env[i+1:]...)
			return
		}
	}
}

func clientService(m *manifests) *corev1.Service { return m.services["flockmq"] }

var breakages = []breakage{
	{"no PodDisruptionBudget", "kinds", func(m *manifests) {
		var objs []object
		for _, o := range m.objects {
			if o.kind != "PodDisruptionBudget" {
				objs = append(objs, o)
			}
		}
		m.objects, m.pdbs = objs, nil
	}},
	{"serviceName is not the headless Service", "headless service", func(m *manifests) {
		m.statefulSet.Spec.ServiceName = "flockmq-peers"
	}},
	{"headless Service with a cluster IP", "headless service", func(m *manifests) {
		headlessService(m).Spec.ClusterIP = ""
	}},
	{"not-ready pods unpublished", "headless service", func(m *manifests) {
		headlessService(m).Spec.PublishNotReadyAddresses = false
	}},
	{"headless Service without gossip over UDP", "headless service", func(m *manifests) {
		svc := headlessService(m)
		var ports []corev1.ServicePort
		for _, p := range svc.Spec.Ports {
			if p.Protocol != corev1.ProtocolUDP {
				ports = append(ports, p)
			}
		}
		svc.Spec.Ports = ports
	}},
	{"pod labels differ from the selector", "selectors", func(m *manifests) {
		m.statefulSet.Spec.Template.Labels = map[string]string{"app.kubernetes.io/name": "mqtt"}
	}},
	{"client Service selects other pods", "selectors", func(m *manifests) {
		clientService(m).Spec.Selector = map[string]string{"app": "flockmq"}
	}},
	{"client Service targets a port the container lacks", "service ports", func(m *manifests) {
		clientService(m).Spec.Ports[0].TargetPort = intstr.FromString("mqtts")
	}},
	{"no Service for the admin port", "service ports", func(m *manifests) {
		delete(m.services, "flockmq-admin")
	}},
	{"container lacks the raft port", "container ports", func(m *manifests) {
		setEnv(m, "FLOCKMQ_RAFT_PORT", "7301")
	}},
	{"admin listens on loopback", "container ports", func(m *manifests) {
		setEnv(m, "FLOCKMQ_ADMIN_LISTEN", "127.0.0.1:8080")
	}},
	{"readiness probe on a port name that does not exist", "probes", func(m *manifests) {
		node(m).ReadinessProbe.HTTPGet.Port = intstr.FromString("adm")
	}},
	{"liveness probe on the MQTT port", "probes", func(m *manifests) {
		node(m).LivenessProbe.HTTPGet.Port = intstr.FromString("mqtt")
	}},
	{"readiness probe on /healthz", "probes", func(m *manifests) {
		node(m).ReadinessProbe.HTTPGet.Path = "/healthz"
	}},
	{"no liveness probe", "probes", func(m *manifests) {
		node(m).LivenessProbe = nil
	}},
	{"a FLOCKMQ_ name that is no option", "env names", func(m *manifests) {
		setEnv(m, "FLOCKMQ_BOOTSTRAP_EXPECTED", "3")
	}},
	{"$(POD_NAMESPACE) used before it is defined", "env names", func(m *manifests) {
		dropEnv(m, "POD_NAMESPACE")
		node(m).Env = append(node(m).Env, corev1.EnvVar{Name: "POD_NAMESPACE",
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}})
	}},
	{"admin token both as a value and a file", "env names", func(m *manifests) {
		setEnv(m, "FLOCKMQ_ADMIN_TOKEN", "x")
	}},
	{"service links on", "env names", func(m *manifests) {
		pod(m).EnableServiceLinks = nil
	}},
	{"bootstrap-expect differs from replicas", "cluster env", func(m *manifests) {
		setEnv(m, "FLOCKMQ_BOOTSTRAP_EXPECT", "5")
	}},
	{"replicas differ from bootstrap-expect", "cluster env", func(m *manifests) {
		m.statefulSet.Spec.Replicas = ptrTo[int32](5)
	}},
	{"cluster-bind 0.0.0.0 without cluster-advertise", "cluster env", func(m *manifests) {
		dropEnv(m, "FLOCKMQ_CLUSTER_ADVERTISE")
	}},
	{"node id not from the pod name", "cluster env", func(m *manifests) {
		setEnv(m, "FLOCKMQ_NODE_ID", "n1")
	}},
	{"data dir is not the volume", "cluster env", func(m *manifests) {
		setEnv(m, "FLOCKMQ_DATA_DIR", "/var/lib/flockmq")
	}},
	{"join lists two of three pods", "join", func(m *manifests) {
		e := envVar(node(m), "FLOCKMQ_JOIN")
		e.Value = e.Value[:strings.LastIndex(e.Value, ",")]
	}},
	{"join on the raft port", "join", func(m *manifests) {
		e := envVar(node(m), "FLOCKMQ_JOIN")
		e.Value = strings.ReplaceAll(e.Value, ":7946", ":7300")
	}},
	{"join names a pod twice", "join", func(m *manifests) {
		e := envVar(node(m), "FLOCKMQ_JOIN")
		e.Value = strings.Replace(e.Value, "flockmq-2.", "flockmq-0.", 1)
	}},
	{"join names another service", "join", func(m *manifests) {
		e := envVar(node(m), "FLOCKMQ_JOIN")
		e.Value = strings.ReplaceAll(e.Value, "flockmq-headless", "flockmq")
	}},
	{"secret volume takes a key the example Secret lacks", "secrets", func(m *manifests) {
		for _, v := range pod(m).Volumes {
			if v.Secret != nil {
				v.Secret.Items[0].Key = "admin_token"
			}
		}
	}},
	{"token file outside the secret volume", "secrets", func(m *manifests) {
		setEnv(m, "FLOCKMQ_ADMIN_TOKEN_FILE", "/etc/flockmq/admin-token")
	}},
	{"no cluster key", "secrets", func(m *manifests) {
		dropEnv(m, "FLOCKMQ_CLUSTER_KEY_FILE")
	}},
	{"secret files unreadable by the group", "secrets", func(m *manifests) {
		for _, v := range pod(m).Volumes {
			if v.Secret != nil {
				v.Secret.DefaultMode = ptrTo[int32](0o400)
			}
		}
	}},
	{"maxUnavailable 2 of 3", "pdb", func(m *manifests) {
		m.pdbs[0].Spec.MaxUnavailable = ptrTo(intstr.FromInt32(2))
	}},
	{"PodDisruptionBudget selects other pods", "pdb", func(m *manifests) {
		m.pdbs[0].Spec.Selector.MatchLabels = map[string]string{"app": "other"}
	}},
	{"runAsNonRoot false", "security context", func(m *manifests) {
		node(m).SecurityContext.RunAsNonRoot = ptrTo(false)
	}},
	{"root user", "security context", func(m *manifests) {
		node(m).SecurityContext.RunAsUser = ptrTo[int64](0)
	}},
	{"writable root filesystem", "security context", func(m *manifests) {
		node(m).SecurityContext.ReadOnlyRootFilesystem = nil
	}},
	{"privilege escalation allowed", "security context", func(m *manifests) {
		node(m).SecurityContext.AllowPrivilegeEscalation = ptrTo(true)
	}},
	{"capabilities kept", "security context", func(m *manifests) {
		node(m).SecurityContext.Capabilities.Drop = nil
	}},
	{"OrderedReady", "pod", func(m *manifests) {
		m.statefulSet.Spec.PodManagementPolicy = "OrderedReady"
	}},
	{"grace period shorter than the node's shutdown", "pod", func(m *manifests) {
		pod(m).TerminationGracePeriodSeconds = ptrTo[int64](10)
	}},
	{"no memory limit", "pod", func(m *manifests) {
		delete(node(m).Resources.Limits, corev1.ResourceMemory)
	}},
	{"no preStop hook", "pod", func(m *manifests) {
		node(m).Lifecycle = nil
	}},
	{"preStop through a shell the image does not have", "pod", func(m *manifests) {
		node(m).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 5"}}}}
	}},
}

// TestChecksCatchBreakage breaks the manifests one way at a time and expects
// the check for that property to fail: a check that passes everything would
// make TestManifests worthless.
func TestChecksCatchBreakage(t *testing.T) {
	opts, err := loadOptions()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]check{}
	for _, c := range checks {
		byName[c.name] = c
	}
	covered := map[string]bool{}
	for _, b := range breakages {
		covered[b.check] = true
	}
	for _, c := range checks {
		if !covered[c.name] {
			t.Errorf("check %q has no breakage that shows it can fail", c.name)
		}
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			c, ok := byName[b.check]
			if !ok {
				t.Fatalf("no check %q", b.check)
			}
			m, err := loadManifests()
			if err != nil {
				t.Fatal(err)
			}
			b.apply(m)
			err = c.fn(m, opts)
			if err == nil {
				t.Fatalf("check %q passed the broken manifests", b.check)
			}
			t.Logf("check %q: %v", b.check, err)
		})
	}
}

// TestStrictDecoding shows that a misspelt field, a field in the wrong case,
// a duplicate key and an unknown kind fail the decoding, as the API server's
// strict field validation would.
func TestStrictDecoding(t *testing.T) {
	data, err := os.ReadFile("flockmq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	orig := "\n  serviceName: flockmq-headless\n"
	if !strings.Contains(string(data), orig) {
		t.Fatalf("flockmq.yaml lacks %q, which this test edits", orig)
	}
	edit := func(replace string) func(string) string {
		return func(s string) string { return strings.Replace(s, orig, replace, 1) }
	}
	for _, tc := range []struct {
		name    string
		breakIt func(string) string
	}{
		{"unknown field", edit("\n  serviceNam: flockmq-headless\n")},
		{"field in the wrong case", edit("\n  ServiceName: flockmq-headless\n")},
		{"duplicate key", edit(orig + "  serviceName: flockmq-headless\n")},
		{"unknown kind", func(s string) string { return s + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: x}\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeFile("flockmq.yaml", []byte(tc.breakIt(string(data)))); err == nil {
				t.Fatal("decoded without an error")
			} else {
				t.Logf("%v", err)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
