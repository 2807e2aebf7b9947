package preflight

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// defaultPath is systemd's PATH for services, used when the environment
// has none: the kubelet runs with it.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// kubeadm's external etcd request policy.
const (
	etcdRequestTimeout = 10 * time.Second
	etcdRequestRetries = 3
)

// etcdRequestInterval is the pause between attempts (a variable for tests).
var etcdRequestInterval = 5 * time.Second

// HostEnv is the real machine seen through root ("" or "/" for the
// machine itself): files are read under root, commands are looked up on
// PATH under root, the CRI socket path is taken under root.
func HostEnv(root string) Env {
	if root == "" {
		root = "/"
	}
	e := Env{
		Root:        root,
		Listen:      net.Listen,
		LookupHost:  net.DefaultResolver.LookupHost,
		Euid:        os.Geteuid,
		NumCPU:      runtime.NumCPU,
		Getenv:      os.Getenv,
		EtcdVersion: etcdVersion,
	}
	e.LookPath = func(file string) (string, error) { return lookPath(root, file) }
	e.Unit = func(ctx context.Context, name string) (UnitState, error) { return systemdUnit(ctx, root, name) }
	e.CRI = func(ctx context.Context, endpoint string) (*CRIInfo, error) { return askRuntime(ctx, root, endpoint) }
	e.KubeletVersion = func(ctx context.Context) (string, error) {
		p, err := lookPath(root, "kubelet")
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(root, p), "--version").Output()
		if err != nil {
			return "", fmt.Errorf("cannot execute '%s --version': %w%s", p, err, stderrOf(err))
		}
		return string(out), nil
	}
	return e
}

// lookPath searches PATH (systemd's default when unset) under root for an
// executable regular file and returns its path inside root.
func lookPath(root, file string) (string, error) {
	dirs := os.Getenv("PATH")
	if dirs == "" {
		dirs = defaultPath
	}
	for _, dir := range filepath.SplitList(dirs) {
		if !filepath.IsAbs(dir) {
			continue // a relative PATH entry means nothing at first boot
		}
		p := filepath.Join(dir, file)
		st, err := os.Stat(filepath.Join(root, p))
		if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", file)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// systemdUnit asks systemd about NAME.service. systemd is the init system
// when /run/systemd/system exists (sd_booted); otherwise the answer is a
// *NoSystemdError naming PID 1.
func systemdUnit(ctx context.Context, root, name string) (UnitState, error) {
	if st, err := os.Stat(filepath.Join(root, "/run/systemd/system")); err != nil || !st.IsDir() {
		pid1, _ := os.ReadFile(filepath.Join(root, "/proc/1/comm"))
		return UnitState{}, &NoSystemdError{PID1: strings.TrimSpace(string(pid1))}
	}
	args := []string{"show", "--property=LoadState,UnitFileState,ActiveState", "--", name + ".service"}
	if root != "/" {
		args = append([]string{"--root=" + root}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", args...).Output()
	if err != nil {
		return UnitState{}, fmt.Errorf("systemctl %s: %w%s", strings.Join(args, " "), err, stderrOf(err))
	}
	return parseSystemctlShow(out), nil
}

// parseSystemctlShow reads `systemctl show` key=value output.
func parseSystemctlShow(out []byte) UnitState {
	var st UnitState
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "LoadState":
			st.Exists = v != "not-found" && v != ""
		case "UnitFileState":
			st.Enabled = v
		case "ActiveState":
			st.Active = v
		}
	}
	return st
}

// etcdVersion GETs an etcd /version URL, retrying as kubeadm does when the
// server cannot be reached or answers 5xx.
func etcdVersion(ctx context.Context, url string, tlsConfig *tls.Config) (string, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig
	tr.Proxy = nil // etcd is reached directly, as the API server does
	client := &http.Client{Transport: tr, Timeout: etcdRequestTimeout}
	defer tr.CloseIdleConnections()
	var lastErr error
	for attempt := 0; attempt <= etcdRequestRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(etcdRequestInterval):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("server responded with non-successful status: %s", resp.Status)
			continue
		}
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("server responded with status %s", resp.Status)
		}
		var v struct {
			Etcdserver string `json:"etcdserver"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return "", fmt.Errorf("decode %s: %w", url, err)
		}
		return v.Etcdserver, nil
	}
	return "", lastErr
}
