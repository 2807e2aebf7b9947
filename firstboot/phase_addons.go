package firstboot

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeboot/kubeboot/pkg/postinstall/addons"
)

var addonsPhase = Phase{
	Name:  "addons",
	Short: "Install the CoreDNS and kube-proxy addons",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Cluster, r.Cfg.KubeProxy, r.controlPlaneEndpoint()}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		dns, err := addons.CoreDNS(r.Cfg)
		if err != nil {
			return "", err
		}
		proxy, err := addons.KubeProxy(r.Cfg, "https://"+r.controlPlaneEndpoint())
		if err != nil {
			return "", err
		}
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		// A user who scaled CoreDNS keeps their replica count. Leaving the
		// field out of the apply is only safe when someone else owns it: if
		// kubeboot still did, the API server would drop it and fall back to
		// one replica.
		for _, o := range dns {
			if d, ok := o.(*appsv1.Deployment); ok {
				cur, err := admin.Typed.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err == nil && cur.Spec.Replicas != nil && d.Spec.Replicas != nil && *cur.Spec.Replicas != *d.Spec.Replicas {
					d.Spec.Replicas = nil
				}
			}
		}
		res, err := r.applier(admin).Apply(ctx, append(append([]runtime.Object{}, dns...), proxy...)...)
		if err != nil {
			return "", err
		}
		what := "CoreDNS and kube-proxy"
		switch {
		case dns == nil && proxy == nil:
			what = "no addons (both disabled)"
		case dns == nil:
			what = "kube-proxy (CoreDNS disabled)"
		case proxy == nil:
			what = "CoreDNS (kube-proxy disabled)"
		}
		return fmt.Sprintf("%s: %s", what, appliedSummary(res)), nil
	},
}
