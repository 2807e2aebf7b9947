package firstboot

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/kubeboot/kubeboot/pkg/postinstall"
)

// userManifestsPhase applies the BootConfiguration's manifests (a CNI
// add-on, say) with server-side apply after the addons and before the join
// secret is published, so that a joining node finds them in place. It runs
// on every re-run: an apply of unchanged objects changes nothing.
var userManifestsPhase = Phase{
	Name:  "user-manifests",
	Short: "Apply the manifests the BootConfiguration lists",
	Apply: func(ctx context.Context, r *Run) (string, error) {
		if len(r.Cfg.Boot.Manifests) == 0 {
			return "none configured", nil
		}
		objs, err := postinstall.ReadManifests(r.Writer.FS(), r.Cfg.Boot.Manifests)
		if err != nil {
			return "", err
		}
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		a := r.applier(admin)
		a.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(admin.Typed.Discovery()))
		// Namespaces and CRDs first: what lives in them applies next.
		var first, rest []runtime.Object
		for _, o := range objs {
			if postinstall.ApplyFirst(o) {
				first = append(first, o)
			} else {
				rest = append(rest, o)
			}
		}
		res, err := a.Apply(ctx, first...)
		if err != nil {
			return "", err
		}
		more, err := a.Apply(ctx, rest...)
		res = append(res, more...)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d files: %s", len(r.Cfg.Boot.Manifests), appliedSummary(res)), nil
	},
}
