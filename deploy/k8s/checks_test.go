package k8s

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// check is one property of the manifests; it reports every problem it finds.
type check struct {
	name string
	fn   func(m *manifests, opts map[string]nodeOption) error
}

// checks run in order against the manifests as they are (TestManifests), and
// each against a broken copy (TestChecksCatchBreakage).
var checks = []check{
	{"kinds", checkKinds},
	{"headless service", checkHeadless},
	{"selectors", checkSelectors},
	{"service ports", checkServicePorts},
	{"container ports", checkContainerPorts},
	{"probes", checkProbes},
	{"env names", checkEnvNames},
	{"cluster env", checkClusterEnv},
	{"join", checkJoin},
	{"secrets", checkSecrets},
	{"pdb", checkPDB},
	{"security context", checkSecurityContext},
	{"pod", checkPod},
}

// Facts about the node that the manifests must agree with.
const (
	containerName = "flockmq"
	imageBinary   = "/flockmq" // the image's ENTRYPOINT; FROM scratch, nothing else
	nonRootUID    = 65532
	// shutdownBudget is what the node takes at most after SIGTERM
	// (cmd/node/main.go: Leave 3 s, broker Shutdown 5 s, engine Stop 10 s).
	shutdownBudget = 18
)

// problems collects a check's findings.
type problems []error

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

func (p problems) err() error { return errors.Join(p...) }

// podParts returns the StatefulSet's pod spec and the node's container.
func podParts(m *manifests) (*corev1.PodTemplateSpec, *corev1.Container, error) {
	if m.statefulSet == nil {
		return nil, nil, errors.New("no StatefulSet")
	}
	tpl := &m.statefulSet.Spec.Template
	for i := range tpl.Spec.Containers {
		if tpl.Spec.Containers[i].Name == containerName {
			return tpl, &tpl.Spec.Containers[i], nil
		}
	}
	return nil, nil, fmt.Errorf("StatefulSet %s has no container %q", m.statefulSet.Name, containerName)
}

func replicas(m *manifests) int {
	if r := m.statefulSet.Spec.Replicas; r != nil {
		return int(*r)
	}
	return 1 // the API's default
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// literal is the value of env var name and whether it is set as a value.
func literal(c *corev1.Container, name string) (string, bool) {
	e := envVar(c, name)
	if e == nil || e.ValueFrom != nil {
		return "", false
	}
	return e.Value, true
}

// fieldRef is the field path env var name is taken from, or "".
func fieldRef(c *corev1.Container, name string) string {
	e := envVar(c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
		return ""
	}
	return e.ValueFrom.FieldRef.FieldPath
}

// optionValue is the node's value of an option: its environment variable,
// else the README's default.
func optionValue(c *corev1.Container, opts map[string]nodeOption, env string) string {
	if v, ok := literal(c, env); ok {
		return v
	}
	return opts[env].def
}

// nodePort is one port the node listens on, by the option that sets it.
type nodePort struct {
	role  string // the container port's purpose, for messages
	env   string
	proto corev1.Protocol
}

var nodePorts = []nodePort{
	{"MQTT", "FLOCKMQ_LISTEN", corev1.ProtocolTCP},
	{"admin", "FLOCKMQ_ADMIN_LISTEN", corev1.ProtocolTCP},
	{"gossip", "FLOCKMQ_GOSSIP_PORT", corev1.ProtocolTCP},
	{"gossip", "FLOCKMQ_GOSSIP_PORT", corev1.ProtocolUDP},
	{"raft", "FLOCKMQ_RAFT_PORT", corev1.ProtocolTCP},
	{"peer link", "FLOCKMQ_PEER_PORT", corev1.ProtocolTCP},
}

// portOf is the port number of option env: a listen address or a port.
func portOf(c *corev1.Container, opts map[string]nodeOption, env string) (int32, error) {
	v := optionValue(c, opts, env)
	if strings.HasSuffix(env, "_LISTEN") {
		host, p, err := net.SplitHostPort(v)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", env, v, err)
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			return 0, fmt.Errorf("%s %q listens on one address only: the kubelet's probes and the Services reach the pod IP", env, v)
		}
		v = p
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %q: not a fixed port", env, v)
	}
	return int32(n), nil
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP // the API's default
	}
	return p
}

// containerPort finds the container port p names (a name, or a number with
// proto).
func containerPort(c *corev1.Container, p intstr.IntOrString, proto corev1.Protocol) *corev1.ContainerPort {
	for i := range c.Ports {
		cp := &c.Ports[i]
		if protocol(cp.Protocol) != protocol(proto) {
			continue
		}
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp
		}
	}
	return nil
}

func podLabels(m *manifests) labels.Set { return m.statefulSet.Spec.Template.Labels }

func headlessService(m *manifests) *corev1.Service {
	if m.statefulSet == nil {
		return nil
	}
	return m.services[m.statefulSet.Spec.ServiceName]
}

func checkKinds(m *manifests, _ map[string]nodeOption) error {
	var p problems
	count := map[string]int{}
	for _, o := range m.objects {
		count[o.kind]++
	}
	for kind, least := range map[string]int{"StatefulSet": 1, "Service": 3, "PodDisruptionBudget": 1, "Secret": 1} {
		if count[kind] < least {
			p.addf("%d %s documents, want at least %d (have %v)", count[kind], kind, least, count)
		}
	}
	if len(m.pdbs) > 1 {
		p.addf("%d PodDisruptionBudgets: one disruption budget per pod set", len(m.pdbs))
	}
	for _, o := range m.objects {
		errs := validation.IsDNS1123Subdomain(o.name)
		if o.kind == "Service" {
			errs = validation.IsDNS1035Label(o.name)
		}
		for _, e := range errs {
			p.addf("%s %q: %s", o.kind, o.name, e)
		}
	}
	return p.err()
}

func checkHeadless(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	svc := headlessService(m)
	if svc == nil {
		return fmt.Errorf("the StatefulSet's serviceName %q is none of the Services %v", m.statefulSet.Spec.ServiceName, sortedKeys(m.services))
	}
	var p problems
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		p.addf("Service %s (the StatefulSet's serviceName) has clusterIP %q, want None: pods get DNS names only from a headless Service", svc.Name, svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		p.addf("Service %s lacks publishNotReadyAddresses: true: nodes must find each other before raft makes them ready", svc.Name)
	}
	for _, np := range nodePorts[2:] { // gossip TCP and UDP, raft, peer
		port, err := portOf(c, opts, np.env)
		if err != nil {
			p.addf("%v", err)
			continue
		}
		if !servesPort(c, svc, port, np.proto) {
			p.addf("Service %s has no %s port %d/%s", svc.Name, np.role, port, np.proto)
		}
	}
	return p.err()
}

// servesPort reports whether svc forwards to the container's port on proto.
func servesPort(c *corev1.Container, svc *corev1.Service, port int32, proto corev1.Protocol) bool {
	for _, sp := range svc.Spec.Ports {
		if cp := containerPort(c, target(sp), sp.Protocol); cp != nil && cp.ContainerPort == port && protocol(cp.Protocol) == proto {
			return true
		}
	}
	return false
}

// target is the container port a Service port forwards to.
func target(sp corev1.ServicePort) intstr.IntOrString {
	if sp.TargetPort.Type == intstr.String || sp.TargetPort.IntVal != 0 {
		return sp.TargetPort
	}
	return intstr.FromInt32(sp.Port) // the API's default: the same number
}

func checkSelectors(m *manifests, _ map[string]nodeOption) error {
	if m.statefulSet == nil {
		return errors.New("no StatefulSet")
	}
	var p problems
	pod := podLabels(m)
	sel, err := metav1.LabelSelectorAsSelector(m.statefulSet.Spec.Selector)
	switch {
	case err != nil:
		p.addf("StatefulSet selector: %v", err)
	case sel.Empty():
		p.addf("StatefulSet has an empty selector")
	case !sel.Matches(pod):
		p.addf("StatefulSet selector %s does not match its pod labels %v", sel, pod)
	}
	for _, name := range sortedKeys(m.services) {
		svc := m.services[name]
		if len(svc.Spec.Selector) == 0 {
			p.addf("Service %s has no selector", name)
			continue
		}
		if s := labels.SelectorFromSet(svc.Spec.Selector); !s.Matches(pod) {
			p.addf("Service %s selects %s, not the pod labels %v", name, s, pod)
		}
	}
	return p.err()
}

func checkServicePorts(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	for _, name := range sortedKeys(m.services) {
		svc := m.services[name]
		if len(svc.Spec.Ports) == 0 {
			p.addf("Service %s has no ports", name)
		}
		for _, sp := range svc.Spec.Ports {
			for _, e := range validation.IsValidPortName(sp.Name) {
				p.addf("Service %s port %q: %s", name, sp.Name, e)
			}
			if t := target(sp); containerPort(c, t, sp.Protocol) == nil {
				p.addf("Service %s port %q forwards to %s/%s, which the container does not have", name, sp.Name, t.String(), protocol(sp.Protocol))
			}
		}
	}
	mqtt, err1 := portOf(c, opts, "FLOCKMQ_LISTEN")
	admin, err2 := portOf(c, opts, "FLOCKMQ_ADMIN_LISTEN")
	if err := errors.Join(err1, err2); err != nil {
		return errors.Join(p.err(), err)
	}
	var client, adminSvc bool
	for _, svc := range m.services {
		if svc == headlessService(m) {
			continue
		}
		client = client || servesPort(c, svc, mqtt, corev1.ProtocolTCP)
		adminSvc = adminSvc || servesPort(c, svc, admin, corev1.ProtocolTCP)
	}
	if !client {
		p.addf("no client Service (other than the headless one) forwards to the MQTT port %d", mqtt)
	}
	if !adminSvc {
		p.addf("no Service (other than the headless one) forwards to the admin port %d", admin)
	}
	return p.err()
}

func checkContainerPorts(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	seen := map[string]bool{}
	for _, cp := range c.Ports {
		for _, e := range validation.IsValidPortName(cp.Name) {
			p.addf("container port %q: %s", cp.Name, e)
		}
		if seen[cp.Name] {
			p.addf("two container ports named %q", cp.Name)
		}
		seen[cp.Name] = true
	}
	for _, np := range nodePorts {
		port, err := portOf(c, opts, np.env)
		if err != nil {
			p.addf("%v", err)
			continue
		}
		if containerPort(c, intstr.FromInt32(port), np.proto) == nil {
			p.addf("no container port %d/%s for the node's %s port (%s)", port, np.proto, np.role, np.env)
		}
	}
	return p.err()
}

func checkProbes(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	admin, err := portOf(c, opts, "FLOCKMQ_ADMIN_LISTEN")
	if err != nil {
		return err
	}
	var p problems
	probe := func(kind string, pr *corev1.Probe, paths ...string) {
		if pr == nil {
			p.addf("no %s probe", kind)
			return
		}
		if pr.HTTPGet == nil {
			p.addf("%s probe is not an HTTP GET of the admin endpoint", kind)
			return
		}
		h := pr.HTTPGet
		cp := containerPort(c, h.Port, corev1.ProtocolTCP)
		switch {
		case cp == nil:
			p.addf("%s probe port %s is no container port", kind, h.Port.String())
		case cp.ContainerPort != admin:
			p.addf("%s probe port %s is %d, not the admin port %d", kind, h.Port.String(), cp.ContainerPort, admin)
		}
		if !slices.Contains(paths, h.Path) {
			p.addf("%s probe path %q, want %s", kind, h.Path, strings.Join(paths, " or "))
		}
		if h.Scheme != "" && h.Scheme != corev1.URISchemeHTTP {
			p.addf("%s probe scheme %s: the admin endpoint has no TLS", kind, h.Scheme)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "/healthz")
	}
	return p.err()
}

// envRef is a $(VAR) reference in an env value, as the kubelet expands it.
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// exclusive are options the node refuses together.
var exclusive = [][2]string{
	{"FLOCKMQ_ADMIN_TOKEN", "FLOCKMQ_ADMIN_TOKEN_FILE"},
	{"FLOCKMQ_CLUSTER_KEY", "FLOCKMQ_CLUSTER_KEY_FILE"},
	{"FLOCKMQ_JWT_SECRET", "FLOCKMQ_JWT_SECRET_FILE"},
	{"FLOCKMQ_RAFT_BIND", "FLOCKMQ_CLUSTER_BIND"},
	{"FLOCKMQ_RAFT_ADVERTISE", "FLOCKMQ_CLUSTER_BIND"},
}

func checkEnvNames(m *manifests, opts map[string]nodeOption) error {
	tpl, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	defined := map[string]bool{}
	for _, e := range c.Env {
		if defined[e.Name] {
			p.addf("env %s is set twice", e.Name)
		}
		if strings.HasPrefix(e.Name, "FLOCKMQ_") {
			if _, ok := opts[e.Name]; !ok {
				p.addf("env %s is no option of the node (README %s, \"Configuration\")", e.Name, readmePath)
			}
		}
		// The kubelet leaves a reference to a variable not defined
		// earlier in the list as it is, silently.
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				p.addf("env %s refers to $(%s), which is not defined before it", e.Name, ref[1])
			}
		}
		defined[e.Name] = true
	}
	for _, pair := range exclusive {
		if defined[pair[0]] && defined[pair[1]] {
			p.addf("env %s and %s are both set; the node refuses them together", pair[0], pair[1])
		}
	}
	if len(c.EnvFrom) > 0 {
		p.addf("envFrom would set options this test cannot see; list them in env")
	}
	if tpl.Spec.EnableServiceLinks == nil || *tpl.Spec.EnableServiceLinks {
		p.addf("enableServiceLinks is not false: a Service in the namespace named flockmq-X would set FLOCKMQ_X_PORT and the like in the node's environment")
	}
	return p.err()
}

func checkClusterEnv(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	if f := fieldRef(c, "FLOCKMQ_NODE_ID"); f != "metadata.name" {
		p.addf("FLOCKMQ_NODE_ID comes from %q, want fieldRef metadata.name (the stable pod name)", f)
	}
	if s := optionValue(c, opts, "FLOCKMQ_STORE"); s != "raft" {
		p.addf("FLOCKMQ_STORE %q: a cluster needs the raft store", s)
	}
	// The data dir is the volume claim template "data", mounted.
	dataDir, ok := literal(c, "FLOCKMQ_DATA_DIR")
	if !ok {
		p.addf("FLOCKMQ_DATA_DIR is not set: the default is relative to the working directory")
	}
	hasTemplate := slices.ContainsFunc(m.statefulSet.Spec.VolumeClaimTemplates, func(pvc corev1.PersistentVolumeClaim) bool { return pvc.Name == "data" })
	if !hasTemplate {
		p.addf("no volumeClaimTemplate named data")
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if vm.Name == "data" {
			mounted = true
			if vm.ReadOnly || path.Clean(vm.MountPath) != path.Clean(dataDir) || vm.SubPath != "" {
				p.addf("volume data is mounted at %q (read-only %v, subPath %q), FLOCKMQ_DATA_DIR is %q", vm.MountPath, vm.ReadOnly, vm.SubPath, dataDir)
			}
		}
	}
	if !mounted {
		p.addf("volume data is not mounted")
	}
	// checkCluster in cmd/node/config.go: an unspecified cluster-bind needs
	// cluster-advertise, which in a StatefulSet must be each pod's own IP.
	bind, ok := literal(c, "FLOCKMQ_CLUSTER_BIND")
	if !ok || bind == "" {
		p.addf("FLOCKMQ_CLUSTER_BIND is not set: clustering is off")
	} else if ip := net.ParseIP(bind); ip != nil && ip.IsUnspecified() {
		if f := fieldRef(c, "FLOCKMQ_CLUSTER_ADVERTISE"); f != "status.podIP" {
			p.addf("FLOCKMQ_CLUSTER_BIND %s needs FLOCKMQ_CLUSTER_ADVERTISE from fieldRef status.podIP, got %q", bind, f)
		}
	}
	expect, ok := literal(c, "FLOCKMQ_BOOTSTRAP_EXPECT")
	if n, err := strconv.Atoi(expect); !ok || err != nil || n != replicas(m) {
		p.addf("FLOCKMQ_BOOTSTRAP_EXPECT %q, want the replicas, %d", expect, replicas(m))
	}
	return p.err()
}

func checkJoin(m *manifests, opts map[string]nodeOption) error {
	_, c, err := podParts(m)
	if err != nil {
		return err
	}
	join, ok := literal(c, "FLOCKMQ_JOIN")
	if !ok || strings.TrimSpace(join) == "" {
		return errors.New("FLOCKMQ_JOIN is not set")
	}
	gossip, err := portOf(c, opts, "FLOCKMQ_GOSSIP_PORT")
	if err != nil {
		return err
	}
	var p problems
	pod := regexp.MustCompile("^" + regexp.QuoteMeta(m.statefulSet.Name) + `-(\d+)\.` +
		regexp.QuoteMeta(m.statefulSet.Spec.ServiceName) + `(\.|$)`)
	seen := map[int]bool{}
	for _, seed := range strings.Split(join, ",") {
		seed = strings.TrimSpace(seed)
		host, port, err := net.SplitHostPort(seed)
		if err != nil {
			host, port = seed, "7946" // cmd/node/config.go parseSeeds: defaultGossipPort
		}
		if port != strconv.Itoa(int(gossip)) {
			p.addf("seed %q: port %s, want the gossip port %d", seed, port, gossip)
		}
		sub := pod.FindStringSubmatch(host)
		if sub == nil {
			p.addf("seed %q is not %s-N.%s...", seed, m.statefulSet.Name, m.statefulSet.Spec.ServiceName)
			continue
		}
		n, _ := strconv.Atoi(sub[1])
		if seen[n] {
			p.addf("seed %q: pod %d listed twice", seed, n)
		}
		seen[n] = true
	}
	for i := range replicas(m) {
		if !seen[i] {
			p.addf("FLOCKMQ_JOIN lacks pod %s-%d", m.statefulSet.Name, i)
		}
		delete(seen, i)
	}
	for n := range seen {
		p.addf("FLOCKMQ_JOIN names pod %s-%d, beyond the %d replicas", m.statefulSet.Name, n, replicas(m))
	}
	return p.err()
}

// secretHas reports whether the example Secret defines key.
func secretHas(s *corev1.Secret, key string) bool {
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	return inData || inString
}

func checkSecrets(m *manifests, _ map[string]nodeOption) error {
	tpl, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	// files maps each file a secret volume puts in the container to its
	// Secret and key.
	type secretFile struct{ secret, key string }
	files := map[string]secretFile{}
	for _, v := range tpl.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		s := m.secrets[v.Secret.SecretName]
		if s == nil {
			p.addf("volume %s: Secret %q is not among the example Secrets %v", v.Name, v.Secret.SecretName, sortedKeys(m.secrets))
			continue
		}
		if mode := v.Secret.DefaultMode; mode != nil && *mode&0o040 == 0 {
			p.addf("volume %s: defaultMode %#o: the files are owned by root and group fsGroup, so the group must read them", v.Name, *mode)
		}
		var mount *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].Name == v.Name {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			continue
		}
		if !mount.ReadOnly {
			p.addf("secret volume %s is mounted read-write", v.Name)
		}
		if len(v.Secret.Items) == 0 {
			for _, k := range append(sortedKeys(s.Data), sortedKeys(s.StringData)...) {
				files[path.Join(mount.MountPath, k)] = secretFile{s.Name, k}
			}
		}
		for _, it := range v.Secret.Items {
			if !secretHas(s, it.Key) {
				p.addf("volume %s takes key %q, which Secret %s does not have", v.Name, it.Key, s.Name)
			}
			files[path.Join(mount.MountPath, it.Path)] = secretFile{s.Name, it.Key}
		}
	}
	for _, f := range []struct{ env, why string }{
		{"FLOCKMQ_ADMIN_TOKEN_FILE", "without a token the admin API answers loopback clients only"},
		{"FLOCKMQ_CLUSTER_KEY_FILE", "anyone who reaches the gossip, raft and peer-link ports could join the cluster"},
	} {
		if _, ok := literal(c, f.env); !ok {
			p.addf("%s is not set: %s", f.env, f.why)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if s := m.secrets[ref.Name]; s == nil || !secretHas(s, ref.Key) {
				p.addf("env %s takes key %q of Secret %q, which the example Secrets do not have", e.Name, ref.Key, ref.Name)
			}
		}
		if !strings.HasPrefix(e.Name, "FLOCKMQ_") || !strings.HasSuffix(e.Name, "_FILE") || e.ValueFrom != nil {
			continue
		}
		if _, ok := files[path.Clean(e.Value)]; !ok {
			p.addf("env %s is %q, which no secret volume provides (files: %v)", e.Name, e.Value, sortedKeys(files))
		}
	}
	return p.err()
}

func checkPDB(m *manifests, _ map[string]nodeOption) error {
	if m.statefulSet == nil || len(m.pdbs) == 0 {
		return errors.New("no StatefulSet or no PodDisruptionBudget")
	}
	var p problems
	pdb := m.pdbs[0]
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels(m)) {
		p.addf("PodDisruptionBudget %s selector %v does not select the pods %v (err %v)", pdb.Name, sel, podLabels(m), err)
	}
	if pdb.Spec.MinAvailable != nil {
		p.addf("PodDisruptionBudget %s sets minAvailable: use maxUnavailable, which holds when the StatefulSet is scaled", pdb.Name)
	}
	mu := pdb.Spec.MaxUnavailable
	if mu == nil || mu.Type != intstr.Int {
		return errors.Join(p.err(), fmt.Errorf("PodDisruptionBudget %s: maxUnavailable must be a number, got %v", pdb.Name, mu))
	}
	r, n := replicas(m), int(mu.IntVal)
	quorum := r/2 + 1
	switch {
	case n < 1:
		p.addf("PodDisruptionBudget %s: maxUnavailable %d blocks every drain", pdb.Name, n)
	case r-n < quorum:
		p.addf("PodDisruptionBudget %s: maxUnavailable %d of %d replicas leaves %d, under the raft quorum %d", pdb.Name, n, r, r-n, quorum)
	}
	return p.err()
}

func checkSecurityContext(m *manifests, _ map[string]nodeOption) error {
	tpl, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	pod := tpl.Spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	// The container's setting wins over the pod's.
	nonRoot, uid := pod.RunAsNonRoot, pod.RunAsUser
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if nonRoot == nil || !*nonRoot {
		p.addf("runAsNonRoot is not true")
	}
	if uid == nil || *uid != nonRootUID {
		p.addf("runAsUser is %v, want %d, the image's non-root user", deref(uid), nonRootUID)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.addf("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.addf("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		p.addf("the container is privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		p.addf("capabilities do not drop ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		p.addf("capabilities add %v: the node's ports are all above 1024", sc.Capabilities.Add)
	}
	if a := tpl.Spec.AutomountServiceAccountToken; a == nil || *a {
		p.addf("automountServiceAccountToken is not false: the node uses no Kubernetes API")
	}
	return p.err()
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func checkPod(m *manifests, opts map[string]nodeOption) error {
	tpl, c, err := podParts(m)
	if err != nil {
		return err
	}
	var p problems
	if m.statefulSet.Spec.PodManagementPolicy != "Parallel" {
		p.addf("podManagementPolicy %q: with OrderedReady the first pod waits to be ready, which needs a raft leader, which needs the other pods", m.statefulSet.Spec.PodManagementPolicy)
	}
	if g := tpl.Spec.TerminationGracePeriodSeconds; g == nil || *g < shutdownBudget+2 {
		p.addf("terminationGracePeriodSeconds %v: the node takes up to %d s to leave after SIGTERM", deref(g), shutdownBudget)
	}
	if c.Image == "" {
		p.addf("no image")
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[res]
		lim, okLim := c.Resources.Limits[res]
		if !okReq || !okLim {
			p.addf("resources: %s needs a request and a limit", res)
		} else if req.Cmp(lim) > 0 {
			p.addf("resources: %s request %s is above its limit %s", res, req.String(), lim.String())
		}
	}
	if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Exec == nil {
		p.addf("no preStop hook: the node should leave the cluster before SIGTERM (%s ctl leave)", imageBinary)
	} else if cmd := l.PreStop.Exec.Command; len(cmd) < 3 || cmd[0] != imageBinary || cmd[1] != "ctl" || cmd[2] != "leave" {
		p.addf("preStop runs %v, want %s ctl leave: the image is FROM scratch, only %s exists in it", cmd, imageBinary, imageBinary)
	}
	if v, ok := tpl.Annotations["prometheus.io/port"]; ok {
		admin, err := portOf(c, opts, "FLOCKMQ_ADMIN_LISTEN")
		if err != nil || v != strconv.Itoa(int(admin)) {
			p.addf("prometheus.io/port %q is not the admin port %d (%v)", v, admin, err)
		}
	}
	return p.err()
}
