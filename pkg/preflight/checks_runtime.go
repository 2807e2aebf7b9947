package preflight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/http/httpproxy"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// proxyFunc is the proxy choice of Go's HTTP transport (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY with CIDRs), read through env so that tests do not
// depend on the process environment.
func proxyFunc(env *Env) func(*url.URL) (*url.URL, error) {
	get := func(keys ...string) string {
		for _, k := range keys {
			if v := env.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	c := httpproxy.Config{
		HTTPProxy:  get("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: get("HTTPS_PROXY", "https_proxy"),
		NoProxy:    get("NO_PROXY", "no_proxy"),
	}
	return c.ProxyFunc()
}

func httpProxyCheck(advertise string) Check {
	return Check{Name: "HTTPProxy", Run: func(_ context.Context, env *Env) Finding {
		if advertise == "" {
			return skipf("no advertise address")
		}
		if env.Getenv == nil {
			return skipf("no way to read the environment here")
		}
		u := &url.URL{Scheme: "https", Host: advertise}
		if ip := net.ParseIP(advertise); ip != nil && ip.To4() == nil {
			u.Host = net.JoinHostPort(advertise, "1234")
		}
		proxy, err := proxyFunc(env)(u)
		if err != nil {
			return errorf("cannot decide the proxy for %q: %v", u, err)
		}
		if proxy != nil {
			return warnf("Connection to %q uses proxy %q. If that is not intended, adjust your proxy settings", u, redact(proxy))
		}
		return okf("%s is reached without a proxy", u)
	}}
}

// httpProxyCIDRCheck tries the first address of each service and pod
// subnet, as the API server reaches Services and Pods. kubeadm lists one
// check per subnet under the same name; here it is one check over all.
func httpProxyCIDRCheck(subnets ...string) Check {
	return Check{Name: "HTTPProxyCIDR", Run: func(_ context.Context, env *Env) Finding {
		if env.Getenv == nil {
			return skipf("no way to read the environment here")
		}
		proxy := proxyFunc(env)
		var f Finding
		var direct []string
		for _, list := range subnets {
			for _, cidr := range strings.Split(list, ",") {
				cidr = strings.TrimSpace(cidr)
				if cidr == "" {
					continue
				}
				_, n, err := net.ParseCIDR(cidr)
				if err != nil {
					f.Errors = append(f.Errors, fmt.Sprintf("error parsing CIDR %q: %v", cidr, err))
					continue
				}
				ip, err := config.NthIP(n, 1)
				if err != nil {
					f.Errors = append(f.Errors, fmt.Sprintf("unable to get first IP address from the given CIDR (%s): %v", n, err))
					continue
				}
				u := &url.URL{Scheme: "https", Host: net.JoinHostPort(ip.String(), "1234"), Path: "/"}
				p, err := proxy(u)
				if err != nil {
					f.Errors = append(f.Errors, fmt.Sprintf("cannot decide the proxy for %q: %v", u, err))
					continue
				}
				if p != nil {
					f.Warnings = append(f.Warnings, fmt.Sprintf("connection to %q uses proxy %q. This may lead to malfunctional cluster setup. Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration", cidr, redact(p)))
					continue
				}
				direct = append(direct, cidr)
			}
		}
		if len(direct) > 0 {
			f.Note = strings.Join(direct, ", ") + " reached without a proxy"
		}
		return f
	}}
}

// redact hides a proxy URL's password.
func redact(u *url.URL) string { return u.Redacted() }

func criCheck(endpoint string) Check {
	return Check{Name: "CRI", Run: func(ctx context.Context, env *Env) Finding {
		info, f := askCRI(ctx, env, endpoint)
		if info == nil {
			return f
		}
		if info.StatusErr != nil {
			return errorf("container runtime is not running: %v", info.StatusErr)
		}
		if !info.Ready {
			return errorf("container runtime condition \"RuntimeReady\" is not true. reason: %s, message: %s", info.Reason, info.Message)
		}
		return okf("%s %s at %s is ready", info.RuntimeName, info.RuntimeVersion, endpoint)
	}}
}

func askCRI(ctx context.Context, env *Env, endpoint string) (*CRIInfo, Finding) {
	if env.CRI == nil {
		return nil, skipf("no way to reach a container runtime here")
	}
	info, err := env.CRI(ctx, endpoint)
	if err != nil {
		return nil, errorf("could not connect to the container runtime at %s: %v", endpoint, err)
	}
	return info, Finding{}
}

func criVersionCheck(endpoint, kubeletDriver string) Check {
	return Check{Name: "ContainerRuntimeVersion", Run: func(ctx context.Context, env *Env) Finding {
		info, f := askCRI(ctx, env, endpoint)
		if info == nil {
			return f
		}
		f.Note = fmt.Sprintf("%s %s, CRI %s", info.RuntimeName, info.RuntimeVersion, info.RuntimeAPIVersion)
		switch {
		case info.RuntimeConfigErr != nil:
			f.Errors = append(f.Errors, fmt.Sprintf("could not check if the runtime config is available: %v", info.RuntimeConfigErr))
		case !info.RuntimeConfig:
			f.Warnings = append(f.Warnings, "You must update your container runtime to a version that supports the CRI method RuntimeConfig. "+
				"Falling back to using cgroupDriver from kubelet config will be removed in 1.38. "+
				"For more information, see https://git.k8s.io/enhancements/keps/sig-node/4033-group-driver-detection-over-cri")
		case info.CgroupDriver != "" && kubeletDriver != "" && info.CgroupDriver != kubeletDriver:
			f.Warnings = append(f.Warnings, fmt.Sprintf("the runtime's cgroup driver is %s and the KubeletConfiguration says %s: the kubelet follows the runtime", info.CgroupDriver, kubeletDriver))
		default:
			f.Note += ", RuntimeConfig supported"
			if info.CgroupDriver != "" {
				f.Note += " (cgroup driver " + info.CgroupDriver + ")"
			}
		}
		if info.RuntimeName == "containerd" {
			if v, err := version.ParseGeneric(info.RuntimeVersion); err == nil && v.Major() < 2 {
				f.Warnings = append(f.Warnings, fmt.Sprintf("containerd %s: Kubernetes 1.38 drops support for containerd 1.x; upgrade to containerd 2", info.RuntimeVersion))
			}
		}
		return f
	}}
}

func externalEtcdCertsCheck(ext *config.ExternalEtcd) Check {
	return Check{Name: etcdCertsCheckName, Run: func(_ context.Context, env *Env) Finding {
		if ext == nil {
			return skipf("etcd is local")
		}
		var f Finding
		var read []string
		for _, p := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
			if p == "" {
				continue
			}
			b, err := env.readFile(p)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					f.Errors = append(f.Errors, fmt.Sprintf("%s doesn't exist", p))
				} else {
					f.Errors = append(f.Errors, fmt.Sprintf("%s cannot be read: %v", p, err))
				}
				continue
			}
			if blk, _ := pem.Decode(b); blk == nil {
				f.Errors = append(f.Errors, fmt.Sprintf("%s holds no PEM data", p))
				continue
			}
			read = append(read, p)
		}
		if len(read) > 0 {
			f.Note = strings.Join(read, ", ") + " readable"
		} else if len(f.Errors) == 0 {
			f.Note = "no client certificates configured"
		}
		return f
	}}
}

func externalEtcdVersionCheck(ext *config.ExternalEtcd) Check {
	return Check{Name: "ExternalEtcdVersion", Run: func(ctx context.Context, env *Env) Finding {
		if ext == nil {
			return skipf("etcd is local")
		}
		endpoints := ext.HTTPEndpoints
		if len(endpoints) == 0 {
			endpoints = ext.Endpoints
		}
		if len(endpoints) == 0 {
			return skipf("no external etcd endpoints")
		}
		if env.EtcdVersion == nil {
			return skipf("no way to reach etcd here")
		}
		tlsConfig, err := etcdTLS(env, ext)
		if err != nil {
			return errorf("%v", err)
		}
		min := version.MustParseSemantic(minExternalEtcd)
		var f Finding
		var seen []string
		for _, ep := range endpoints {
			u, err := url.Parse(strings.TrimSuffix(ep, "/") + "/version")
			if err != nil {
				f.Errors = append(f.Errors, fmt.Sprintf("failed to parse external etcd endpoint %s: %v", ep, err))
				continue
			}
			got, err := env.EtcdVersion(ctx, u.String(), tlsConfig)
			if err != nil {
				f.Errors = append(f.Errors, fmt.Sprintf("%s: %v", u, err))
				continue
			}
			v, err := version.ParseSemantic(got)
			if err != nil {
				f.Errors = append(f.Errors, fmt.Sprintf("couldn't parse external etcd version %q from %s: %v", got, ep, err))
				continue
			}
			if v.LessThan(min) {
				f.Errors = append(f.Errors, fmt.Sprintf("this version of kubeboot only supports external etcd version >= %s. Current version: %s (%s)", minExternalEtcd, got, ep))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s: etcd %s", ep, got))
		}
		f.Note = strings.Join(seen, ", ")
		return f
	}}
}

// etcdTLS builds the client TLS configuration from the external etcd's
// CA, certificate and key files, read under the root.
func etcdTLS(env *Env, ext *config.ExternalEtcd) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ext.CAFile != "" {
		b, err := env.readFile(ext.CAFile)
		if err != nil {
			return nil, fmt.Errorf("couldn't load external etcd's server certificate %s: %w", ext.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("external etcd's CA file %s holds no PEM certificate", ext.CAFile)
		}
		c.RootCAs = pool
	}
	if ext.CertFile != "" && ext.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(env.path(ext.CertFile), env.path(ext.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("couldn't load external etcd's certificate and key pair %s, %s: %w", ext.CertFile, ext.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func ipvsCheck(cfg *config.Config) Check {
	mode := string(cfg.KubeProxy.Mode)
	disabled := cfg.Cluster.Proxy.Disabled
	return Check{Name: ipvsCheckName, Run: func(_ context.Context, env *Env) Finding {
		if disabled {
			return skipf("kube-proxy is disabled")
		}
		if mode != "ipvs" {
			return skipf("kube-proxy mode is %s, not ipvs", mode)
		}
		present, err := kernelModules(env)
		if err != nil {
			return errorf("cannot list the kernel's modules: %v", err)
		}
		var missing []string
		for _, m := range ipvsModules {
			if !present[m] {
				missing = append(missing, m)
			}
		}
		deprecated := "kube-proxy's ipvs mode is deprecated in 1.37 (off by default in 1.40, removed in 1.43); migrate to nftables"
		if len(missing) > 0 {
			return Finding{
				Errors:   []string{fmt.Sprintf("the IPVS proxier needs kernel modules that are not loaded: %s; load them (BootConfiguration kernelModules) or use kube-proxy mode nftables", strings.Join(missing, ", "))},
				Warnings: []string{deprecated},
			}
		}
		return Finding{Warnings: []string{deprecated}, Note: strings.Join(ipvsModules, ", ") + " present"}
	}}
}

// kernelModules lists the modules the kernel has: loaded (/proc/modules,
// /sys/module) or built in (modules.builtin of the running release).
func kernelModules(env *Env) (map[string]bool, error) {
	present := map[string]bool{}
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	b, err := env.readFile("/proc/modules")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			present[norm(f[0])] = true
		}
	}
	if ents, err := os.ReadDir(env.path("/sys/module")); err == nil {
		for _, e := range ents {
			present[norm(e.Name())] = true
		}
	}
	if rel, err := env.readString("/proc/sys/kernel/osrelease"); err == nil && rel != "" {
		for _, dir := range []string{"/lib/modules/", "/usr/lib/modules/"} {
			b, err := env.readFile(dir + rel + "/modules.builtin")
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				name := line[strings.LastIndex(line, "/")+1:]
				if name, ok := strings.CutSuffix(name, ".ko"); ok {
					present[norm(name)] = true
				}
			}
		}
	}
	return present, nil
}
