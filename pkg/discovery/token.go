package discovery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// DefaultTimeout is kubeadm's discovery timeout (timeouts.discovery).
const DefaultTimeout = 5 * time.Minute

const (
	clusterInfoPath = "/api/v1/namespaces/kube-public/configmaps/" + bootstrapapi.ConfigMapClusterInfo
	// maxClusterInfo bounds what is read from an endpoint not yet trusted;
	// a ConfigMap is at most 1 MiB.
	maxClusterInfo = 2 << 20
	firstRetry     = 200 * time.Millisecond
	maxRetry       = 2 * time.Second
	requestTimeout = 10 * time.Second
)

// ByToken authenticates the cluster at endpoint (host:port) with a
// bootstrap token ("id.secret") and returns its cluster-info kubeconfig,
// whose CA is then trusted:
//
//  1. GET kube-public/cluster-info anonymously, without verifying TLS
//     (the CA is not known yet), until it answers and carries a signature
//     for the token's ID, or timeout passes;
//  2. verify that signature (JWS, HS256 keyed by the token) over the
//     kubeconfig: only a holder of the token can have made it;
//  3. pin the kubeconfig's CA by the SHA-256 of its SubjectPublicKeyInfo
//     against caCertHashes ("sha256:<hex>"), as kubeadm's
//     --discovery-token-ca-cert-hash;
//  4. GET cluster-info again over TLS that trusts only that CA, and
//     require the same kubeconfig.
//
// As in kubeadm, unsafeSkipCAVerification only allows caCertHashes to be
// empty (the token's signature is then the only check); hashes that are
// given are always checked. timeout bounds the whole discovery
// (DefaultTimeout when zero). Each failure wraps one of the Err values.
// The token's secret never appears in an error.
func ByToken(ctx context.Context, endpoint string, token string, caCertHashes []string, unsafeSkipCAVerification bool, timeout time.Duration) (*clientcmdapi.Config, error) {
	if !bootstraputil.IsValidBootstrapToken(token) {
		return nil, fmt.Errorf(`discovery: invalid bootstrap token: expected the form "[a-z0-9]{6}.[a-z0-9]{16}"`)
	}
	id, secret, _ := strings.Cut(token, ".")
	pins, err := parsePins(caCertHashes)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if len(pins) == 0 && !unsafeSkipCAVerification {
		return nil, fmt.Errorf("discovery: no CA hash to pin the cluster CA with: give caCertHashes (--discovery-token-ca-cert-hash sha256:<hex>, in the join secret as caCertHashes), or set unsafeSkipCAVerification to trust whoever signs cluster-info with the token")
	}
	hostPort, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := &reader{endpoint: hostPort, timeout: timeout}

	// 1. The first read trusts nothing: the token's signature is what
	// authenticates the answer.
	insecure := &tls.Config{InsecureSkipVerify: true}
	first, err := r.poll(ctx, insecure, func(cm *corev1.ConfigMap) *readError {
		if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]; !ok {
			// The signature is added after the token: keep polling.
			return &readError{kind: ErrUnknownToken,
				what: fmt.Sprintf("cluster-info at %s has no signature for token ID %q", hostPort, id),
				advice: "the token may have expired; create a new one on a control-plane node with `kubeadm token create` " +
					"or re-run `kubeboot init phase bootstrap-token`"}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	kubeconfig := first.Data[bootstrapapi.KubeConfigKey]

	// 2. The signature.
	if !jws.DetachedTokenIsValid(first.Data[bootstrapapi.JWSSignatureKeyPrefix+id], kubeconfig, id, secret) {
		return nil, fmt.Errorf("discovery: %w: the signature for token ID %q in cluster-info at %s does not verify: "+
			"the token's secret is wrong, or cluster-info was altered on the way; check the token and do not trust this endpoint",
			ErrBadSignature, id, hostPort)
	}
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return nil, fmt.Errorf("discovery: %w: the signed kubeconfig in cluster-info at %s does not parse: %w", ErrNoClusterInfo, hostPort, err)
	}
	cluster, err := Cluster(cfg)
	if err == nil && cluster.Server == "" {
		err = fmt.Errorf("no server")
	}
	var cas []*x509.Certificate
	if err == nil {
		cas, err = caCerts(cluster)
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: %w: the signed kubeconfig in cluster-info at %s: %w", ErrNoClusterInfo, hostPort, err)
	}

	// 3. The pin.
	if len(pins) > 0 {
		var found []string
		for _, c := range cas {
			found = append(found, Hash(c))
		}
		if !anyPinned(found, pins) {
			return nil, fmt.Errorf("discovery: %w: the cluster CA at %s has public key hash %s, expected %s: "+
				"check the hash (the join secret's caCertHashes, or --discovery-token-ca-cert-hash); "+
				"if it is right, this endpoint is not the cluster you mean to join",
				ErrCAHashMismatch, hostPort, strings.Join(found, ", "), strings.Join(caCertHashes, " or "))
		}
	}

	// 4. The same document again, over TLS verified against that CA.
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	second, err := r.poll(ctx, &tls.Config{RootCAs: pool}, nil)
	if err != nil {
		return nil, err
	}
	if second.Data[bootstrapapi.KubeConfigKey] != kubeconfig {
		return nil, fmt.Errorf("discovery: %w: cluster-info read from %s over TLS verified with the pinned CA differs from the signed copy read first; "+
			"retry, and suspect that something between this machine and the API server alters traffic if it happens again",
			ErrChanged, hostPort)
	}
	return cfg, nil
}

func anyPinned(found []string, pins map[string]bool) bool {
	for _, h := range found {
		if pins[h] {
			return true
		}
	}
	return false
}

// parseEndpoint accepts host:port, with or without https://.
func parseEndpoint(endpoint string) (string, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(endpoint, "https://"), "/")
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" || strings.ContainsAny(s, "/?#@") {
		return "", fmt.Errorf("invalid API server endpoint %q: expected host:port, e.g. 192.0.2.10:6443", endpoint)
	}
	return s, nil
}

// reader GETs cluster-info from one endpoint.
type reader struct {
	endpoint string
	timeout  time.Duration
}

// readError is one failed attempt: kind is the Err value it wraps, what
// says what happened, advice what to do; permanent stops the polling.
type readError struct {
	kind         error
	what, advice string
	cause        error
	permanent    bool
}

// final is the error the caller sees once polling stops.
func (e *readError) final(attempts int, timeout time.Duration) error {
	msg := e.what
	if !e.permanent {
		msg += fmt.Sprintf(" (gave up after %s, %d attempts)", timeout, attempts)
	}
	advice := ""
	if e.advice != "" {
		advice = ": " + e.advice
	}
	if e.cause != nil {
		return fmt.Errorf("discovery: %w: %s: %w%s", e.kind, msg, e.cause, advice)
	}
	return fmt.Errorf("discovery: %w: %s%s", e.kind, msg, advice)
}

// poll reads cluster-info until it is there and check accepts it, a
// permanent error occurs, or ctx ends.
func (r *reader) poll(ctx context.Context, tlsConfig *tls.Config, check func(*corev1.ConfigMap) *readError) (*corev1.ConfigMap, error) {
	client := &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: requestTimeout,
			DisableKeepAlives:   true,
		},
	}
	wait := firstRetry
	var useful *readError // the last failure that says more than "time is up"
	for attempt := 1; ; attempt++ {
		cm, rerr := r.get(ctx, client)
		if rerr == nil && check != nil {
			rerr = check(cm)
		}
		if rerr == nil {
			return cm, nil
		}
		if rerr.permanent {
			return nil, rerr.final(attempt, r.timeout)
		}
		// An attempt the deadline cut short only says the deadline came;
		// the error before it (connection refused, say) says why.
		if useful == nil || !errors.Is(rerr.cause, context.DeadlineExceeded) {
			useful = rerr
		}
		rerr = useful
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, fmt.Errorf("discovery canceled: %w (last attempt: %w)", ctx.Err(), rerr.final(attempt, r.timeout))
			}
			return nil, rerr.final(attempt, r.timeout)
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetry)
	}
}

func (r *reader) get(ctx context.Context, client *http.Client) (*corev1.ConfigMap, *readError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.endpoint+clusterInfoPath, nil)
	if err != nil {
		return nil, &readError{kind: ErrUnreachable, what: "bad endpoint " + r.endpoint, cause: err, permanent: true}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubeboot-discovery")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known; keep the cause
		}
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			e := &readError{kind: ErrUntrustedServer, permanent: true, cause: verr.Err,
				what:   fmt.Sprintf("the certificate of the API server at %s does not verify against the CA in cluster-info", r.endpoint),
				advice: "the API server's serving certificate is not from the cluster CA that cluster-info names"}
			var herr x509.HostnameError
			if errors.As(verr.Err, &herr) {
				e.advice = "the endpoint's name or address must be among the API server certificate's SANs (apiServer.certSANs)"
			}
			return nil, e
		}
		return nil, &readError{kind: ErrUnreachable, cause: err,
			what:   "no answer from " + r.endpoint,
			advice: "check the endpoint's address and port, the network, and that the control plane is running"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxClusterInfo+1))
	if err != nil {
		return nil, &readError{kind: ErrUnreachable, cause: err, what: "reading the answer from " + r.endpoint}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, &readError{kind: ErrNoClusterInfo,
			what:   r.endpoint + " has no ConfigMap kube-public/cluster-info (404)",
			advice: "it is not a kubeadm or kubeboot cluster, or its init has not finished; check the endpoint"}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, &readError{kind: ErrNoClusterInfo,
			what: fmt.Sprintf("%s does not let anonymous clients read kube-public/cluster-info (%s)", r.endpoint, resp.Status),
			advice: "token discovery needs anonymous authentication on the API server and the Role and RoleBinding " +
				"kubeadm:bootstrap-signer-clusterinfo in kube-public (`kubeboot init phase bootstrap-token` creates them)"}
	case resp.StatusCode != http.StatusOK:
		return nil, &readError{kind: ErrNoClusterInfo, what: fmt.Sprintf("%s answered %s for kube-public/cluster-info", r.endpoint, resp.Status)}
	case len(body) > maxClusterInfo:
		return nil, &readError{kind: ErrNoClusterInfo, permanent: true, what: fmt.Sprintf("%s answered more than %d bytes for kube-public/cluster-info", r.endpoint, maxClusterInfo)}
	}
	var cm corev1.ConfigMap
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&cm); err != nil || cm.Kind != "ConfigMap" {
		return nil, &readError{kind: ErrNoClusterInfo, permanent: true,
			what: r.endpoint + " answered, but not with a ConfigMap", advice: "is it a Kubernetes API server?"}
	}
	if cm.Data[bootstrapapi.KubeConfigKey] == "" {
		return nil, &readError{kind: ErrNoClusterInfo, permanent: true,
			what:   fmt.Sprintf("cluster-info at %s has no %q key", r.endpoint, bootstrapapi.KubeConfigKey),
			advice: "this cluster is not set up for token discovery"}
	}
	return &cm, nil
}
