package k8s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestGlobs are the files `kubectl apply -f deploy/k8s/` applies (it is
// not recursive and reads .json, .yaml and .yml), and the example Secret,
// which it deliberately does not.
var manifestGlobs = []string{"*.yaml", "*.yml", "*.json", "example/*.yaml"}

// readmePath is the node's documented option table (README "Configuration").
const readmePath = "../../README.md"

// kinds are the API types a document may decode into, by apiVersion/kind.
// A document of any other kind fails the test: add its type here.
var kinds = map[string]func() any{
	"v1/Service":                    func() any { return new(corev1.Service) },
	"v1/Secret":                     func() any { return new(corev1.Secret) },
	"apps/v1/StatefulSet":           func() any { return new(appsv1.StatefulSet) },
	"policy/v1/PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
}

// object is one decoded document.
type object struct {
	file, kind, name string
	obj              any
}

// manifests is every document, and the ones the checks look at by role.
type manifests struct {
	objects     []object
	statefulSet *appsv1.StatefulSet
	services    map[string]*corev1.Service
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
}

// loadManifests reads and strictly decodes every manifest file.
func loadManifests() (*manifests, error) {
	var files []string
	for _, g := range manifestGlobs {
		matches, err := filepath.Glob(g)
		if err != nil {
			return nil, err
		}
		files = append(files, matches...)
	}
	if len(files) == 0 {
		return nil, errors.New("no manifest files found")
	}
	m := &manifests{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := decodeFile(f, data)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if err := m.add(o); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *manifests) add(o object) error {
	for _, p := range m.objects {
		if p.kind == o.kind && p.name == o.name {
			return fmt.Errorf("%s: %s %q is also in %s", o.file, o.kind, o.name, p.file)
		}
	}
	m.objects = append(m.objects, o)
	switch v := o.obj.(type) {
	case *appsv1.StatefulSet:
		if m.statefulSet != nil {
			return fmt.Errorf("%s: a second StatefulSet %q; the checks expect one", o.file, o.name)
		}
		m.statefulSet = v
	case *corev1.Service:
		m.services[o.name] = v
	case *corev1.Secret:
		m.secrets[o.name] = v
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, v)
	}
	return nil
}

// decodeFile splits a file into its YAML documents and decodes each.
func decodeFile(file string, data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		o, ok, err := decodeDoc(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if ok {
			o.file = file
			objs = append(objs, o)
		}
	}
}

// decodeDoc decodes one document into its API type, refusing duplicate keys
// (YAMLToJSONStrict), unknown fields (encoding/json's DisallowUnknownFields)
// and fields whose case differs from the API's (sigs.k8s.io/json, which the
// API server decodes with; encoding/json matches names case-insensitively).
// ok is false for an empty document (comments only).
func decodeDoc(doc []byte) (o object, ok bool, err error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return o, false, err
	}
	if s := strings.TrimSpace(string(j)); s == "null" || s == "" {
		return o, false, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return o, false, err
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObj, known := kinds[gvk]
	if !known {
		return o, false, fmt.Errorf("no API type for %s: add it to kinds", gvk)
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return o, false, fmt.Errorf("%s: %w", gvk, err)
	}
	if dec.More() {
		return o, false, fmt.Errorf("%s: data after the object", gvk)
	}
	strict, err := kjson.UnmarshalStrict(j, newObj(), kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return o, false, fmt.Errorf("%s: %w", gvk, err)
	}
	if len(strict) > 0 {
		return o, false, fmt.Errorf("%s: %w", gvk, errors.Join(strict...))
	}
	meta, err := objectMeta(obj)
	if err != nil {
		return o, false, err
	}
	if meta.Name == "" {
		return o, false, fmt.Errorf("%s without metadata.name", gvk)
	}
	return object{kind: tm.Kind, name: meta.Name, obj: obj}, true, nil
}

func objectMeta(obj any) (*metav1.ObjectMeta, error) {
	switch v := obj.(type) {
	case *corev1.Service:
		return &v.ObjectMeta, nil
	case *corev1.Secret:
		return &v.ObjectMeta, nil
	case *appsv1.StatefulSet:
		return &v.ObjectMeta, nil
	case *policyv1.PodDisruptionBudget:
		return &v.ObjectMeta, nil
	}
	return nil, fmt.Errorf("no metadata for %T", obj)
}

// nodeOption is one row of the README's configuration table.
type nodeOption struct {
	name, def string
}

// optionRow matches a row of README "Configuration":
// | `name` | `default` | `FLOCKMQ_NAME` | meaning |
var optionRow = regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| `([^`]*)` \\| `(FLOCKMQ_[A-Z0-9_]+)` \\|")

// loadOptions returns the node's documented options by environment name.
func loadOptions() (map[string]nodeOption, error) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return nil, err
	}
	opts := map[string]nodeOption{}
	for _, row := range optionRow.FindAllStringSubmatch(string(readme), -1) {
		name, def, env := row[1], row[2], row[3]
		if want := "FLOCKMQ_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")); env != want {
			return nil, fmt.Errorf("README: option %s has environment %s, not %s", name, env, want)
		}
		opts[env] = nodeOption{name: name, def: def}
	}
	// A table whose format changed would match nothing and let every name
	// through as unknown; these are options the manifests rely on.
	for _, env := range []string{"FLOCKMQ_NODE_ID", "FLOCKMQ_JOIN", "FLOCKMQ_BOOTSTRAP_EXPECT",
		"FLOCKMQ_CLUSTER_BIND", "FLOCKMQ_GOSSIP_PORT", "FLOCKMQ_ADMIN_LISTEN", "FLOCKMQ_LISTEN"} {
		if _, ok := opts[env]; !ok {
			return nil, fmt.Errorf("README's option table (%s) has no row for %s: did its format change? found %d rows",
				readmePath, env, len(opts))
		}
	}
	return opts, nil
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
