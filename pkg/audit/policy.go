package audit

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// knownGroups are the built-in API groups of Kubernetes 1.37 whose
// requests are logged with bodies; requests to other groups (CRDs,
// aggregated APIs) are logged at Metadata level, whose size is bounded.
var knownGroups = []string{
	"",
	"admissionregistration.k8s.io",
	"apiextensions.k8s.io",
	"apiregistration.k8s.io",
	"apps",
	"authentication.k8s.io",
	"authorization.k8s.io",
	"autoscaling",
	"batch",
	"certificates.k8s.io",
	"coordination.k8s.io",
	"discovery.k8s.io",
	"flowcontrol.apiserver.k8s.io",
	"internal.apiserver.k8s.io",
	"networking.k8s.io",
	"node.k8s.io",
	"policy",
	"rbac.authorization.k8s.io",
	"resource.k8s.io",
	"scheduling.k8s.io",
	"storage.k8s.io",
	"storagemigration.k8s.io",
}

func groups(names []string) []auditv1.GroupResources {
	out := make([]auditv1.GroupResources, len(names))
	for i, g := range names {
		out[i] = auditv1.GroupResources{Group: g}
	}
	return out
}

func core(resources ...string) auditv1.GroupResources {
	return auditv1.GroupResources{Resources: resources}
}

// DefaultPolicy is modelled on the policy Kubernetes' GCE scripts install
// (cluster/gce/gci/configure-helper.sh), the reference of the kubeadm 1.12
// era, updated for 1.37. The first rule that matches a request decides:
//
//   - None for high-volume, low-risk traffic: kube-proxy watching
//     endpoints, EndpointSlices and Services; nodes reading Node objects;
//     control-plane components reading and updating their endpoints and
//     leases, nodes renewing their leases; the apiserver reading
//     namespaces; the controller-manager reading metrics; events; and the
//     health and version endpoints /healthz*, /livez*, /readyz*, /version.
//   - Request for status updates from nodes and the namespace
//     controller's deletecollection calls, whose responses are large.
//   - Metadata only for Secrets, ConfigMaps, service-account TokenRequests
//     and TokenReviews, which carry credentials.
//   - Request for reads (get, list, watch) of built-in APIs, whose
//     responses are large; RequestResponse for writes to them.
//   - Metadata for everything else (custom resources, aggregated APIs,
//     other non-resource URLs).
//
// RequestReceived is never logged (ResponseStarted/ResponseComplete carry
// the same information), nor are managedFields.
func DefaultPolicy() *auditv1.Policy {
	const kubeSystem = "kube-system"
	nodes := []string{"system:nodes"}
	return &auditv1.Policy{
		TypeMeta:          metav1.TypeMeta{APIVersion: policyAPIVersion, Kind: "Policy"},
		OmitStages:        []auditv1.Stage{auditv1.StageRequestReceived},
		OmitManagedFields: true,
		Rules: []auditv1.PolicyRule{
			{
				Level: auditv1.LevelNone,
				Users: []string{"system:kube-proxy", "system:serviceaccount:kube-system:kube-proxy"},
				Verbs: []string{"watch"},
				Resources: []auditv1.GroupResources{
					core("endpoints", "services", "services/status"),
					{Group: "discovery.k8s.io", Resources: []string{"endpointslices"}},
				},
			},
			{
				Level:      auditv1.LevelNone,
				UserGroups: nodes,
				Verbs:      []string{"get"},
				Resources:  []auditv1.GroupResources{core("nodes", "nodes/status")},
			},
			{
				Level: auditv1.LevelNone,
				Users: []string{
					"system:kube-controller-manager",
					"system:kube-scheduler",
					"system:serviceaccount:kube-system:endpoint-controller",
				},
				Verbs:      []string{"get", "update"},
				Namespaces: []string{kubeSystem},
				Resources:  []auditv1.GroupResources{core("endpoints")},
			},
			{
				Level:     auditv1.LevelNone,
				Users:     []string{"system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"},
				Verbs:     []string{"get", "update"},
				Resources: []auditv1.GroupResources{{Group: "coordination.k8s.io", Resources: []string{"leases"}}},
			},
			{
				Level:      auditv1.LevelNone,
				UserGroups: nodes,
				Verbs:      []string{"get", "update"},
				Resources:  []auditv1.GroupResources{{Group: "coordination.k8s.io", Resources: []string{"leases"}}},
			},
			{
				Level:     auditv1.LevelNone,
				Users:     []string{"system:apiserver"},
				Verbs:     []string{"get"},
				Resources: []auditv1.GroupResources{core("namespaces", "namespaces/status", "namespaces/finalize")},
			},
			{
				Level:     auditv1.LevelNone,
				Users:     []string{"system:kube-controller-manager"},
				Verbs:     []string{"get", "list"},
				Resources: []auditv1.GroupResources{{Group: "metrics.k8s.io"}},
			},
			{
				Level:           auditv1.LevelNone,
				NonResourceURLs: []string{"/healthz*", "/livez*", "/readyz*", "/version"},
			},
			{
				Level: auditv1.LevelNone,
				Resources: []auditv1.GroupResources{
					core("events"),
					{Group: "events.k8s.io", Resources: []string{"events"}},
				},
			},
			{
				Level:      auditv1.LevelRequest,
				UserGroups: nodes,
				Verbs:      []string{"update", "patch"},
				Resources:  []auditv1.GroupResources{core("nodes/status", "pods/status")},
			},
			{
				Level: auditv1.LevelRequest,
				Users: []string{"system:serviceaccount:kube-system:namespace-controller"},
				Verbs: []string{"deletecollection"},
			},
			{
				Level: auditv1.LevelMetadata,
				Resources: []auditv1.GroupResources{
					core("secrets", "configmaps", "serviceaccounts/token"),
					{Group: "authentication.k8s.io", Resources: []string{"tokenreviews"}},
				},
			},
			{
				Level:     auditv1.LevelRequest,
				Verbs:     []string{"get", "list", "watch"},
				Resources: groups(knownGroups),
			},
			{
				Level:     auditv1.LevelRequestResponse,
				Resources: groups(knownGroups),
			},
			{Level: auditv1.LevelMetadata},
		},
	}
}
