// Package k8s holds no code: its tests check the Kubernetes manifests beside
// them (flockmq.yaml and example/flockmq-secrets.yaml), since no cluster runs
// where the tests do. It is a module of its own so that the Kubernetes API
// types are not dependencies of the broker.
package k8s
