package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/pkg/postinstall/addons"
)

const nodeName = "kb-cp"

type env struct {
	t        *testing.T
	root     string
	kubeboot string
	config   string
	plane    *Plane
	addr     string
	metadata *metadataServer
}

// metadataServer is the test's side of the HTTP join-secret sink.
type metadataServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	puts int
}

func newMetadataServer() *metadataServer {
	m := &metadataServer{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.puts++
		if m.puts == 1 { // the first attempt fails: kubeboot must retry
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		m.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	return m
}

func setup(t *testing.T) *env {
	bins, reason, ok := BinsFromEnv()
	if !ok {
		t.Skip(reason)
	}
	ips, err := host.Facts{}.DefaultRouteSources()
	if err != nil || len(ips) == 0 || ips[0].To4() == nil {
		t.Skipf("needs an IPv4 default route to advertise the API server on (got %v, %v)", ips, err)
	}
	e := &env{t: t, root: t.TempDir(), addr: ips[0].String()}
	e.plane = &Plane{Root: e.root, LogDir: t.TempDir(), Bins: bins}
	t.Cleanup(func() {
		e.plane.StopAll()
		if t.Failed() {
			for _, c := range e.plane.Components {
				t.Logf("---- %s (last lines)\n%s", c.Name, c.Tail(25))
			}
		}
	})
	e.kubeboot = filepath.Join(t.TempDir(), "kubeboot")
	if out, err := exec.Command("go", "build", "-o", e.kubeboot, "../../cmd/kubeboot").CombinedOutput(); err != nil {
		t.Fatalf("build kubeboot: %v\n%s", err, out)
	}
	e.metadata = newMetadataServer()
	t.Cleanup(e.metadata.Close)
	// A virtio-serial port as a minimal guest shows it: sysfs name, /dev node.
	os.MkdirAll(filepath.Join(e.root, "sys/class/virtio-ports/vport1p1"), 0o755)
	os.WriteFile(filepath.Join(e.root, "sys/class/virtio-ports/vport1p1/name"), []byte("kubeboot.join\n"), 0o644)
	os.MkdirAll(filepath.Join(e.root, "dev"), 0o755)
	os.WriteFile(filepath.Join(e.root, "dev/vport1p1"), nil, 0o600)
	e.config = filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: %s
localAPIEndpoint:
  advertiseAddress: %s
timeouts:
  controlPlaneComponentHealthCheck: 3m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
uploadCerts: true
joinSecret:
  sinks:
  - file: {path: /var/lib/kubeboot/join-secret.json}
  - virtioSerial: {name: kubeboot.join}
  - http: {url: "%s/join?sig=not-for-logs", timeout: 30s}
`, nodeName, e.addr, e.metadata.URL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run starts kubeboot; onLine is called for each output line.
func (e *env) run(extraEnv []string, onLine func(string)) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(e.kubeboot, "init", "--root", e.root, "--config", e.config, "--skip-phases", "host,preflight,images,kubelet-start")
	cmd.Env = append(os.Environ(), extraEnv...)
	var out bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if onLine != nil {
				onLine(sc.Text())
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close() }()
	return cmd, &out
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) *os.ProcessState {
	deadline := time.Now().Add(timeout)
	for cmd.ProcessState == nil {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("kubeboot did not finish within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd.ProcessState
}

// startPlane starts each component as soon as its manifest is complete.
func (e *env) startPlane(timeout time.Duration) {
	dir := filepath.Join(e.root, "etc/kubernetes/manifests")
	deadline := time.Now().Add(timeout)
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		for {
			if _, err := os.Stat(filepath.Join(dir, name+".yaml")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				e.t.Errorf("manifest %s.yaml never appeared", name)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := e.plane.Start(filepath.Join(dir, name+".yaml")); err != nil {
			e.t.Errorf("start %s: %v", name, err)
			return
		}
	}
}

func (e *env) clients(kubeconfig string) *kubernetes.Clientset {
	c, err := postinstall.NewClients(filepath.Join(e.root, "etc/kubernetes", kubeconfig))
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Typed.(*kubernetes.Clientset)
}

// registerNode stands in for the kubelet, which this harness does not run.
func (e *env) registerNode(ctx context.Context) {
	cs := e.clients("super-admin.conf")
	for ctx.Err() == nil {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func livez(ctx context.Context, url string) time.Time {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for ctx.Err() == nil {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}
}

func TestControlPlane(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	start := time.Now()
	var secretAt time.Time
	secretFile := filepath.Join(e.root, "var/lib/kubeboot/join-secret.json")
	go func() {
		for ctx.Err() == nil && secretAt.IsZero() {
			if _, err := os.Stat(secretFile); err == nil {
				secretAt = time.Now()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	cmd, out := e.run(nil, nil)
	e.startPlane(time.Minute)
	api := e.plane.Get("kube-apiserver")
	if api == nil {
		cmd.Process.Kill()
		time.Sleep(100 * time.Millisecond)
		t.Fatalf("control plane not started; kubeboot said:\n%s", out)
	}
	liveAt := livez(ctx, "https://"+net.JoinHostPort(e.addr, "6443")+"/livez")
	go e.registerNode(ctx)
	st := waitExit(t, cmd, 5*time.Minute)
	if !st.Success() {
		t.Fatalf("kubeboot init failed (%v):\n%s", st, out)
	}
	for _, c := range e.plane.Components {
		if done, err := c.Exited(); done {
			t.Fatalf("%s exited (%v): a flag, certificate or kubeconfig was rejected:\n%s", c.Name, err, c.Tail(30))
		}
	}
	t.Logf("kubeboot output:\n%s", out)
	a := liveAt.Sub(api.Started)
	b := secretAt.Sub(start)
	t.Logf("BENCH apiserver start → /livez: %s; kubeboot start → join secret written: %s; difference: %s", a.Round(time.Millisecond), b.Round(time.Millisecond), (b - a).Round(time.Millisecond))
	if f := os.Getenv("KUBEBOOT_BENCH_OUT"); f != "" {
		os.WriteFile(f, []byte(fmt.Sprintf("apiserver_livez_ms %d\nkubeboot_join_secret_ms %d\n", a.Milliseconds(), b.Milliseconds())), 0o644)
	}

	secret := readSecret(t, secretFile)
	_, tokenSecret, _ := strings.Cut(secret.Token, ".")
	if strings.Contains(out.String(), tokenSecret) || strings.Contains(out.String(), secret.CertificateKey) || strings.Contains(out.String(), "not-for-logs") {
		t.Errorf("kubeboot's output shows the token, the certificate key or the sink URL's query")
	}
	t.Run("objects", func(t *testing.T) { checkObjects(t, e) })
	t.Run("join secret sinks", func(t *testing.T) { checkSinks(t, e, secret) })
	t.Run("anonymous cluster-info", func(t *testing.T) { checkClusterInfo(t, e, secret) })
	t.Run("discovery", func(t *testing.T) { testDiscovery(t, e, secret) })
	t.Run("join dry run", func(t *testing.T) { testJoinDryRun(t, e, secret) })
	t.Run("sealed join secret", func(t *testing.T) { testSealedJoin(t, e, secret) })
	t.Run("bootstrap token CSR auto-approved", func(t *testing.T) { checkCSR(t, e, secret) })
	t.Run("permissions", func(t *testing.T) { checkPermissions(t, e, secret) })
	t.Run("kubeadm-certs", func(t *testing.T) { checkCerts(t, e, secret) })
	t.Run("rerun changes nothing", func(t *testing.T) { checkRerun(t, e) })
	t.Run("killed during post-install converges", func(t *testing.T) { checkKilled(t, e) })
	t.Run("apiserver restart during post-install", func(t *testing.T) { checkAPIRestart(t, e) })
	// Last: kubeadm's upload replaces kubeboot's kubeadm-certs.
	t.Run("kubeadm upload-certs read by kubeboot", func(t *testing.T) { testKubeadmUploadCerts(t, e, secret) })
}

func readSecret(t *testing.T, path string) joinsecret.Secret {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := joinsecret.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// caHash recomputes kubeadm's discovery hash from ca.crt, independently.
func caHash(t *testing.T, root string) string {
	data, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func checkSinks(t *testing.T, e *env, s joinsecret.Secret) {
	want := caHash(t, e.root)
	if len(s.CACertHashes) != 1 || s.CACertHashes[0] != want {
		t.Errorf("file sink CA hash %v, want %s", s.CACertHashes, want)
	}
	if s.APIServerEndpoint != net.JoinHostPort(e.addr, "6443") || s.CertificateKey == "" {
		t.Errorf("secret: endpoint %s, certificate key set %v", s.APIServerEndpoint, s.CertificateKey != "")
	}
	st, _ := os.Stat(filepath.Join(e.root, "var/lib/kubeboot/join-secret.json"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file sink mode %v", st.Mode().Perm())
	}
	port, _ := os.ReadFile(filepath.Join(e.root, "dev/vport1p1"))
	if vs, err := joinsecret.Parse("virtio", port); err != nil || vs.CACertHashes[0] != want || vs.Token != s.Token {
		t.Errorf("virtio-serial sink: %v", err)
	}
	e.metadata.mu.Lock()
	body, puts := e.metadata.body, e.metadata.puts
	e.metadata.mu.Unlock()
	if hs, err := joinsecret.Parse("http", body); err != nil || hs.CACertHashes[0] != want || hs.Token != s.Token {
		t.Errorf("HTTP sink (%d PUTs): %v", puts, err)
	}
	if puts < 2 {
		t.Errorf("HTTP sink was not retried after a 503 (%d PUTs)", puts)
	}
}

func checkObjects(t *testing.T, e *env) {
	ctx := context.Background()
	cs := e.clients("admin.conf")
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := config.Load("kubeadm-config", []byte(cm.Data["ClusterConfiguration"]))
	if err != nil || cc.Cluster.Networking.PodSubnet != "10.244.0.0/16" {
		t.Errorf("kubeadm-config ClusterConfiguration: %v", err)
	}
	if managedBy(cm.ManagedFields) != postinstall.FieldManager {
		t.Errorf("kubeadm-config not applied by field manager kubeboot: %v", cm.ManagedFields)
	}
	kc, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubelet-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(kc.Data["kubelet"], "kind: KubeletConfiguration") {
		t.Errorf("kubelet-config: %v", err)
	}
	for _, r := range []struct{ ns, name string }{
		{"kube-system", "kubeadm:nodes-kubeadm-config"}, {"kube-system", "kubeadm:kubelet-config"},
		{"kube-public", "kubeadm:bootstrap-signer-clusterinfo"}, {"kube-system", "kubeadm:kubeadm-certs"}, {"kube-system", "kube-proxy"},
	} {
		if _, err := cs.RbacV1().Roles(r.ns).Get(ctx, r.name, metav1.GetOptions{}); err != nil {
			t.Errorf("role %s/%s: %v", r.ns, r.name, err)
		}
		if _, err := cs.RbacV1().RoleBindings(r.ns).Get(ctx, r.name, metav1.GetOptions{}); err != nil {
			t.Errorf("rolebinding %s/%s: %v", r.ns, r.name, err)
		}
	}
	for _, name := range []string{"kubeadm:cluster-admins", "kubeadm:kubelet-bootstrap", "kubeadm:node-autoapprove-bootstrap",
		"kubeadm:node-autoapprove-certificate-rotation", "kubeadm:get-nodes", "kubeadm:node-proxier", "system:coredns"} {
		if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("clusterrolebinding %s: %v", name, err)
		}
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("node labels %v", node.Labels)
	}
	if _, ok := node.Labels["node.kubernetes.io/exclude-from-external-load-balancers"]; !ok {
		t.Errorf("node labels %v", node.Labels)
	}
	// The node lifecycle controller adds not-ready (no kubelet here); the
	// control-plane taint must be there beside it, exactly once.
	n := 0
	for _, taint := range node.Spec.Taints {
		if taint.Key == "node-role.kubernetes.io/control-plane" && taint.Effect == corev1.TaintEffectNoSchedule {
			n++
		}
	}
	if n != 1 {
		t.Errorf("node taints %v", node.Spec.Taints)
	}
	if node.Annotations["kubeadm.alpha.kubernetes.io/cri-socket"] != config.DefaultCRISocket {
		t.Errorf("cri-socket annotation %v", node.Annotations)
	}
	svc, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("kube-dns service: %v %v", err, svc)
	}
	dep, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Containers[0].Image != "registry.k8s.io/coredns/coredns:v1.14.6" {
		t.Errorf("coredns deployment: %v", err)
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil {
		t.Errorf("coredns PDB: %v", err)
	}
	ds, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil || ds.Spec.Template.Spec.Containers[0].Image != "registry.k8s.io/kube-proxy:v1.37.2" {
		t.Errorf("kube-proxy daemonset: %v", err)
	}
	pcm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil || !strings.Contains(pcm.Data["config.conf"], "mode: nftables") {
		t.Errorf("kube-proxy configmap: %v", err)
	}
	secrets, err := cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "type=bootstrap.kubernetes.io/token"})
	if err != nil || len(secrets.Items) < 1 {
		t.Errorf("bootstrap token secrets: %v", err)
	}
}

func managedBy(mf []metav1.ManagedFieldsEntry) string {
	for _, m := range mf {
		if m.Operation == metav1.ManagedFieldsOperationApply {
			return m.Manager
		}
	}
	return ""
}

func anonymousConfig(t *testing.T, e *env) *rest.Config {
	ca, err := os.ReadFile(filepath.Join(e.root, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: "https://" + net.JoinHostPort(e.addr, "6443"), TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

func checkClusterInfo(t *testing.T, e *env, s joinsecret.Secret) {
	cs, err := kubernetes.NewForConfig(anonymousConfig(t, e))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("anonymous read of cluster-info: %v", err)
	}
	id, secret, _ := strings.Cut(s.Token, ".")
	sig, ok := cm.Data["jws-kubeconfig-"+id]
	if !ok || !jws.DetachedTokenIsValid(sig, cm.Data["kubeconfig"], id, secret) {
		t.Errorf("cluster-info JWS for token %s missing or invalid", id)
	}
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kubeadm-config", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("anonymous read of kube-system: %v, want forbidden", err)
	}
}

func tokenClient(t *testing.T, e *env, token string) *kubernetes.Clientset {
	cfg := anonymousConfig(t, e)
	cfg.BearerToken = token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func checkCSR(t *testing.T, e *env, s joinsecret.Secret) {
	ctx := context.Background()
	cs := tokenClient(t, e, s.Token)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:kb-worker", Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth},
		},
	}
	created, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bootstrap token cannot create a CSR: %v", err)
	}
	admin := e.clients("admin.conf")
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := admin.CertificatesV1().CertificateSigningRequests().Get(ctx, created.Name, metav1.GetOptions{})
		if err == nil && len(got.Status.Certificate) > 0 {
			for _, c := range got.Status.Conditions {
				if c.Type == certv1.CertificateApproved {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CSR %s not approved and signed within 90s: %+v", created.Name, got.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func checkPermissions(t *testing.T, e *env, s joinsecret.Secret) {
	ctx := context.Background()
	for _, kc := range []string{"admin.conf", "super-admin.conf"} {
		if _, err := e.clients(kc).CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("%s cannot list secrets: %v", kc, err)
		}
	}
	if _, err := tokenClient(t, e, s.Token).CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("bootstrap token listing secrets: %v, want forbidden", err)
	}
}

func checkCerts(t *testing.T, e *env, s joinsecret.Secret) {
	key, err := postinstall.ParseCertificateKey(s.CertificateKey)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := e.clients("admin.conf").CoreV1().Secrets("kube-system").Get(context.Background(), "kubeadm-certs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range postinstall.SharedCerts(filepath.Join(e.root, "etc/kubernetes/pki"), false) {
		want, _ := os.ReadFile(p)
		got, err := postinstall.Open(sec.Data[name], key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("kubeadm-certs %s does not decrypt to %s: %v", name, p, err)
		}
	}
	if len(sec.OwnerReferences) != 1 || !strings.HasPrefix(sec.OwnerReferences[0].Name, "bootstrap-token-") {
		t.Errorf("kubeadm-certs owner %v", sec.OwnerReferences)
	}
}

// versions records the resourceVersion of every object kubeboot applies.
func versions(t *testing.T, e *env) map[string]string {
	ctx := context.Background()
	c, err := postinstall.NewClients(filepath.Join(e.root, "etc/kubernetes/admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("c", mustRead(t, e.config))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Init.NodeRegistration.Name = nodeName
	objs, _ := postinstall.UploadConfig(cfg)
	dns, _ := addons.CoreDNS(cfg)
	proxy, _ := addons.KubeProxy(cfg, "https://"+net.JoinHostPort(e.addr, "6443"))
	objs = append(append(append(objs, postinstall.BootstrapRBAC()...), dns...), proxy...)
	objs = append(objs, postinstall.ClusterAdmins())
	out := map[string]string{}
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		gvr := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
		if gvk.Kind == "PodDisruptionBudget" {
			gvr.Resource = "poddisruptionbudgets"
		}
		var got *unstructured.Unstructured
		if m.GetNamespace() != "" {
			got, err = c.Dynamic.Resource(gvr).Namespace(m.GetNamespace()).Get(ctx, m.GetName(), metav1.GetOptions{})
		} else {
			got, err = c.Dynamic.Resource(gvr).Get(ctx, m.GetName(), metav1.GetOptions{})
		}
		if err != nil {
			t.Errorf("get %s %s: %v", gvk.Kind, m.GetName(), err)
			continue
		}
		// Controllers update the status of workloads and budgets, which moves
		// their resourceVersion; a change of ours would move the generation.
		v := got.GetResourceVersion()
		switch gvk.Kind {
		case "Deployment", "DaemonSet", "PodDisruptionBudget":
			v = fmt.Sprintf("generation %d", got.GetGeneration())
		}
		out[gvk.Kind+"/"+m.GetNamespace()+"/"+m.GetName()] = v
	}
	for _, name := range []string{"cluster-info"} {
		cm, _ := c.Typed.CoreV1().ConfigMaps("kube-public").Get(ctx, name, metav1.GetOptions{})
		out["ConfigMap/kube-public/"+name] = cm.ResourceVersion
	}
	// The node's status and lifecycle taints move on their own; what
	// kubeboot sets is its labels, annotation and control-plane taint.
	n, _ := c.Typed.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	cp := 0
	for _, taint := range n.Spec.Taints {
		if taint.Key == "node-role.kubernetes.io/control-plane" {
			cp++
		}
	}
	out["Node//"+nodeName] = fmt.Sprint(n.Labels, n.Annotations["kubeadm.alpha.kubernetes.io/cri-socket"], cp)
	return out
}

func mustRead(t *testing.T, p string) []byte {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func forgetJournal(t *testing.T, e *env) {
	if err := os.Remove(filepath.Join(e.root, "var/lib/kubeboot/journal.json")); err != nil {
		t.Fatal(err)
	}
}

func compareVersions(t *testing.T, before, after map[string]string) {
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed: resourceVersion %s → %s", k, v, after[k])
		}
	}
}

// checkRerun runs every phase again against the live API server (the
// journal is removed, so nothing is skipped): no object may change.
func checkRerun(t *testing.T, e *env) {
	before := versions(t, e)
	forgetJournal(t, e)
	cmd, out := e.run(nil, nil)
	if st := waitExit(t, cmd, 3*time.Minute); !st.Success() {
		t.Fatalf("re-run failed:\n%s", out)
	}
	compareVersions(t, before, versions(t, e))
}

func checkKilled(t *testing.T, e *env) {
	before := versions(t, e)
	for _, phase := range []string{"upload-config", "mark-control-plane", "bootstrap-token", "addons"} {
		forgetJournal(t, e)
		cmd, out := e.run([]string{"KUBEBOOT_FAULT_KILL_AFTER=" + phase}, nil)
		st := waitExit(t, cmd, 3*time.Minute)
		if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("not killed after %s:\n%s", phase, out)
		}
		cmd, out = e.run(nil, nil)
		if st := waitExit(t, cmd, 3*time.Minute); !st.Success() {
			t.Fatalf("re-run after a kill in %s failed:\n%s", phase, out)
		}
	}
	compareVersions(t, before, versions(t, e))
}

// checkAPIRestart stops the API server as soon as kubeboot has seen the
// control plane healthy, and starts it again a second later: the
// post-install phases must retry and finish.
func checkAPIRestart(t *testing.T, e *env) {
	forgetJournal(t, e)
	var once sync.Once
	restarted := make(chan error, 1)
	cmd, out := e.run(nil, func(line string) {
		if strings.HasPrefix(line, "[wait-control-plane]") && strings.Contains(line, "healthy") {
			once.Do(func() {
				go func() {
					e.plane.Get("kube-apiserver").Stop()
					time.Sleep(time.Second)
					_, err := e.plane.Start(filepath.Join(e.root, "etc/kubernetes/manifests/kube-apiserver.yaml"))
					restarted <- err
				}()
			})
		}
	})
	st := waitExit(t, cmd, 3*time.Minute)
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the API server was never restarted:\n%s", out)
	}
	if !st.Success() {
		t.Fatalf("kubeboot did not survive an API server restart:\n%s", out)
	}
}
