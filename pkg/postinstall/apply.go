// Package postinstall creates the cluster objects kubeadm 1.37 creates
// after the control plane is up, with kubeadm's names and contents so that
// `kubeadm join` and `kubeadm upgrade` work against a kubeboot cluster.
// Objects are built by pure functions; Applier applies them with
// server-side apply under the field manager "kubeboot".
package postinstall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// FieldManager owns every field kubeboot applies.
const FieldManager = "kubeboot"

// resources maps the kinds kubeboot creates to their API resources; a
// static table keeps discovery (and its round trips) out of first boot.
var resources = map[schema.GroupVersionKind]struct {
	resource   string
	namespaced bool
}{
	{Version: "v1", Kind: "ConfigMap"}:                                              {"configmaps", true},
	{Version: "v1", Kind: "Secret"}:                                                 {"secrets", true},
	{Version: "v1", Kind: "Service"}:                                                {"services", true},
	{Version: "v1", Kind: "ServiceAccount"}:                                         {"serviceaccounts", true},
	{Version: "v1", Kind: "Node"}:                                                   {"nodes", false},
	{Group: "apps", Version: "v1", Kind: "Deployment"}:                              {"deployments", true},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"}:                               {"daemonsets", true},
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}:                   {"poddisruptionbudgets", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:               {"roles", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:        {"rolebindings", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        {"clusterroles", false},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: {"clusterrolebindings", false},
}

// Applier applies objects with server-side apply, retrying transient
// failures (an API server restarting mid-way) until Timeout per object.
type Applier struct {
	Client  dynamic.Interface
	Timeout time.Duration
	// Ready, when set, blocks until the API server is ready again after a
	// transient failure (see Retry).
	Ready func(context.Context) error
	// Mapper finds the resource of kinds outside kubeboot's own table
	// (user manifests: CRDs, custom resources, anything); nil: the table only.
	Mapper meta.ResettableRESTMapper
}

// Applied reports one object.
type Applied struct {
	Kind, Namespace, Name string
	// Changed is false when the object already had this content.
	Changed bool
}

// Apply applies objects concurrently (a few at a time) and returns their
// results in the order given, or the first error. Server-side apply needs
// no ordering between these objects: controllers wait for what is missing.
func (a Applier) Apply(ctx context.Context, objs ...runtime.Object) ([]Applied, error) {
	out := make([]Applied, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, obj := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = a.apply(ctx, obj)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (a Applier) apply(ctx context.Context, obj runtime.Object) (Applied, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return Applied{}, err
	}
	gvk := u.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, qualified(u.GetNamespace(), u.GetName()))
	result := Applied{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
	err = Retry(ctx, a.Timeout, a.Ready, func(ctx context.Context) error {
		ri, err := a.resource(u)
		if err != nil {
			return err
		}
		before := ""
		if cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{}); err == nil {
			before = cur.GetResourceVersion()
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		after, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			return err
		}
		result.Changed = after.GetResourceVersion() != before
		return nil
	})
	if err != nil {
		return result, fmt.Errorf("apply %s: %w", what, err)
	}
	return result, nil
}

// resource finds where an object lives: kubeboot's own table, else the
// API server's discovery (reset once when the kind is not found, since a
// CRD applied just before may have added it).
func (a Applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	gvr, namespaced, err := a.mapping(gvk)
	if err != nil {
		return nil, err
	}
	if !namespaced {
		return a.Client.Resource(gvr), nil
	}
	// A user's manifest may leave the namespace out, as kubectl allows.
	if u.GetNamespace() == "" {
		u.SetNamespace(metav1.NamespaceDefault)
	}
	return a.Client.Resource(gvr).Namespace(u.GetNamespace()), nil
}

// mapping is a kind's resource and scope.
func (a Applier) mapping(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, error) {
	if res, ok := resources[gvk]; ok {
		return gvk.GroupVersion().WithResource(res.resource), res.namespaced, nil
	}
	if a.Mapper == nil {
		return schema.GroupVersionResource{}, false, fmt.Errorf("kind %s not known to kubeboot", gvk.Kind)
	}
	m, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.Mapper.Reset()
		m, err = a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			// Transient while a CRD is being established; Retry gives up
			// after its timeout with this message.
			return schema.GroupVersionResource{}, false, transientError{fmt.Errorf("the API server serves no %s: %w", gvk, err)}
		}
	}
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// toUnstructured drops the fields a typed object always serialises but an
// apply must not claim (creationTimestamp: null, empty status).
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("object %s has no apiVersion/kind", u.GetName())
	}
	return u, nil
}

// Retry runs fn until it succeeds, fails permanently, or timeout passes.
// Transient means: the API server is restarting, overloaded or not yet
// serving (connection refused or reset, 429, 5xx, timeouts). After a
// transient failure, ready (when set) is polled until the API server says
// it is ready: a restarted API server answers requests before its RBAC
// caches are filled, and those answers are a wrong "forbidden".
func Retry(ctx context.Context, timeout time.Duration, ready func(context.Context) error, fn func(context.Context) error) error {
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.Now().Add(timeout)
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, min(15*time.Second, time.Until(deadline)+time.Millisecond))
		err := fn(cctx)
		cancel()
		if err == nil || !Transient(err) {
			return err
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
		waitReady(ctx, deadline, ready)
	}
}

// waitReady polls ready until it answers or the deadline passes.
func waitReady(ctx context.Context, deadline time.Time, ready func(context.Context) error) {
	for ready != nil && time.Now().Before(deadline) && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(rctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ReadyFunc asks the API server's /readyz through a typed client.
func ReadyFunc(c kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}
}

// Transient tells errors worth retrying from final answers.
func Transient(err error) bool {
	var te transientError
	switch {
	case errors.As(err, &te):
		return true
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var se *apierrors.StatusError
	if errors.As(err, &se) && se.ErrStatus.Code >= 500 {
		return true
	}
	return false
}

// transientError marks a condition that passes by itself (a kind that
// appears once its CRD is established).
type transientError struct{ error }

func (t transientError) Unwrap() error { return t.error }
