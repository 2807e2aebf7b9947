package wait

import (
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
)

// ControlPlane returns kubeadm 1.37's checks: the apiserver's /livez and
// /readyz on the advertise address (verified against the cluster CA), the
// controller manager's :10257/healthz and the scheduler's :10259/livez,
// and the kubelet's :10248/healthz when kubeboot manages a kubelet.
func ControlPlane(advertise string, port int32, ca *x509.CertPool, withKubelet bool) []Check {
	api := "https://" + net.JoinHostPort(advertise, strconv.Itoa(int(port)))
	checks := []Check{
		{Name: "kube-apiserver /livez", URL: api + "/livez", Container: "kube-apiserver", RootCAs: ca},
		{Name: "kube-apiserver /readyz", URL: api + "/readyz?verbose", Container: "kube-apiserver", RootCAs: ca},
		{Name: "kube-controller-manager", URL: "https://127.0.0.1:10257/healthz", Container: "kube-controller-manager"},
		{Name: "kube-scheduler", URL: "https://127.0.0.1:10259/livez", Container: "kube-scheduler"},
	}
	if withKubelet {
		checks = append([]Check{{Name: "kubelet", URL: "http://127.0.0.1:10248/healthz"}}, checks...)
	}
	return checks
}

// Summary is one progress line for the timeline.
func Summary(results []Result) string {
	s := ""
	for i, r := range results {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %s", r.Name, r.After.Round(1e6))
	}
	return s
}
