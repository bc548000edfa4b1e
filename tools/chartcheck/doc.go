// Package chartcheck holds the offline checks of the Helm charts and Dockerfiles: its tests
// render charts/orderapp with Helm's Go SDK for every ci/*-values.yaml file, decode each object
// strictly into the Kubernetes and Prometheus Operator types, run Helm's lint, the Pod Security
// "restricted" checks and kubeconform against schemas generated from the Kubernetes OpenAPI
// document, run `secret-proxy --check` on the rendered configuration, and lint the Dockerfiles
// with BuildKit's rules. It is a module of its own (not in go.work) so that Helm, BuildKit and
// the Kubernetes libraries never reach the product modules' dependency graphs.
package chartcheck
