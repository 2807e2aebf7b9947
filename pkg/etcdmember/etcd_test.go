package etcdmember

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The tests below run real etcd processes, with TLS and client
// certificate checks on both client and peer ports as in a kubeadm
// cluster. KUBEBOOT_ETCD_BIN names the directory holding the etcd binary;
// `make test` sets it from test/k8sbin/build.sh.

// testTimeout bounds each test's calls; the machine running them may be
// busy.
const testTimeout = 2 * time.Minute

type etcdNode struct {
	name      string
	clientURL string
	peerURL   string
	dataDir   string
	logFile   string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func (n *etcdNode) member() Member { return Member{Name: n.name, PeerURL: n.peerURL} }

type testCluster struct {
	t     *testing.T
	bin   string
	pki   testPKI
	tls   *tls.Config
	nodes []*etcdNode
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	dir := os.Getenv("KUBEBOOT_ETCD_BIN")
	if dir == "" {
		t.Skip("KUBEBOOT_ETCD_BIN is unset; set it to the directory holding etcd (the part after the colon of `test/k8sbin/build.sh path | tail -1`)")
	}
	bin := filepath.Join(dir, "etcd")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("KUBEBOOT_ETCD_BIN=%s: %v", dir, err)
	}
	c := &testCluster{t: t, bin: bin, pki: newTestPKI(t)}
	var err error
	if c.tls, err = ClientTLS(c.pki.CA, c.pki.ClientCert, c.pki.ClientKey); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
			if t.Failed() {
				out, _ := os.ReadFile(n.logFile)
				if len(out) > 4000 {
					out = out[len(out)-4000:]
				}
				t.Logf("etcd %s log tail:\n%s", n.name, out)
			}
		}
	})
	return c
}

// node reserves ports and directories for a member that is not started.
func (c *testCluster) node(name string) *etcdNode {
	c.t.Helper()
	n := &etcdNode{
		name:      name,
		clientURL: "https://" + freeAddr(c.t),
		peerURL:   "https://" + freeAddr(c.t),
		dataDir:   filepath.Join(c.t.TempDir(), "data"),
		logFile:   filepath.Join(c.t.TempDir(), name+".log"),
	}
	c.nodes = append(c.nodes, n)
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs n's etcd. It must not call t.Fatal: tests start members from
// other goroutines too.
func (c *testCluster) start(n *etcdNode, initialCluster, state string) error {
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	n.cmd = exec.Command(c.bin,
		"--name="+n.name,
		"--data-dir="+n.dataDir,
		"--listen-client-urls="+n.clientURL,
		"--advertise-client-urls="+n.clientURL,
		"--listen-peer-urls="+n.peerURL,
		"--initial-advertise-peer-urls="+n.peerURL,
		"--initial-cluster="+initialCluster,
		"--initial-cluster-state="+state,
		"--cert-file="+c.pki.ServerCert,
		"--key-file="+c.pki.ServerKey,
		"--trusted-ca-file="+c.pki.CA,
		"--client-cert-auth",
		"--peer-cert-file="+c.pki.PeerCert,
		"--peer-key-file="+c.pki.PeerKey,
		"--peer-trusted-ca-file="+c.pki.CA,
		"--peer-client-cert-auth",
	)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start etcd %s: %w", n.name, err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(n.cmd, n.exited)
	return nil
}

func (c *testCluster) mustStart(n *etcdNode, initialCluster, state string) {
	c.t.Helper()
	if err := c.start(n, initialCluster, state); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) stop(n *etcdNode) {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// wipe stops n and empties its data directory, as a reinstalled node
// would find it.
func (c *testCluster) wipe(n *etcdNode) {
	c.t.Helper()
	c.stop(n)
	if err := os.RemoveAll(n.dataDir); err != nil {
		c.t.Fatal(err)
	}
}

// startNew starts nodes as a new cluster and waits until each has a leader.
func (c *testCluster) startNew(nodes ...*etcdNode) {
	c.t.Helper()
	var pairs []string
	for _, n := range nodes {
		pairs = append(pairs, n.name+"="+n.peerURL)
	}
	for _, n := range nodes {
		c.mustStart(n, strings.Join(pairs, ","), "new")
	}
	for _, n := range nodes {
		c.waitLeader(n)
	}
}

func (c *testCluster) waitLeader(n *etcdNode) {
	c.t.Helper()
	cli := c.raw(n)
	deadline := time.Now().Add(testTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Status(ctx, n.clientURL)
		cancel()
		if err == nil && resp.Leader != 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd %s has no leader after %s: %v", n.name, testTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// raw is a plain etcd client to nodes, to set up and check what the
// package under test does.
func (c *testCluster) raw(nodes ...*etcdNode) *clientv3.Client {
	c.t.Helper()
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.clientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: c.tls, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// client is the package's Client, reaching the cluster through nodes.
func (c *testCluster) client(nodes ...*etcdNode) Client {
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.clientURL)
	}
	return Client{Endpoints: eps, TLS: c.tls, Log: slog.New(slog.NewTextHandler(c.t.Output(), nil))}
}

// members lists the members as seen by nodes, by name ("" for unstarted).
func (c *testCluster) members(ctx context.Context, cli Client) map[string]MemberStatus {
	c.t.Helper()
	ms, err := cli.Members(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]MemberStatus{}
	for _, m := range ms {
		if _, dup := out[m.Name]; dup {
			c.t.Fatalf("two members named %q: %v", m.Name, ms)
		}
		out[m.Name] = m
	}
	return out
}

func wantVoters(t *testing.T, got map[string]MemberStatus, names ...string) {
	t.Helper()
	if len(got) != len(names) {
		t.Fatalf("members %v, want voters %v", got, names)
	}
	for _, name := range names {
		if m, ok := got[name]; !ok || m.Learner || !m.Started {
			t.Fatalf("members %v, want %s a started voter", got, name)
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// readWrite writes through one node and reads it back, linearizably,
// through another.
func readWrite(t *testing.T, ctx context.Context, from, to *clientv3.Client, key string) {
	t.Helper()
	val := strconv.FormatInt(time.Now().UnixNano(), 10)
	if _, err := from.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	resp, err := to.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, []byte(val)) {
		t.Fatalf("get %s = %v, want %s", key, resp.Kvs, val)
	}
}

func TestJoinPromoteRemove(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b := c.node("a"), c.node("b")
	c.startNew(a)
	cli := c.client(a)

	ic, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=" + a.peerURL + ",b=" + b.peerURL; ic != want {
		t.Fatalf("initial cluster %s, want %s", ic, want)
	}
	ms := c.members(ctx, cli)
	if m := ms[""]; len(ms) != 2 || !m.Learner || m.Started || m.PeerURLs[0] != b.peerURL {
		t.Fatalf("members %v, want a and an unstarted learner at %s", ms, b.peerURL)
	}

	c.mustStart(b, ic, "existing")
	if err := cli.Promote(ctx, b.member()); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, c.members(ctx, cli), "a", "b")
	ra, rb := c.raw(a), c.raw(b)
	readWrite(t, ctx, ra, rb, "from-a")
	readWrite(t, ctx, rb, ra, "from-b")

	// Re-running either step on a node that joined changes nothing.
	if err := cli.Promote(ctx, b.member()); err != nil {
		t.Fatalf("promote a voter: %v", err)
	}
	if again, err := cli.Add(ctx, b.member(), false); err != nil || again != ic {
		t.Fatalf("add again: %q, %v; want %q", again, err, ic)
	}
	wantVoters(t, c.members(ctx, cli), "a", "b")

	if err := cli.Remove(ctx, b.member()); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, c.members(ctx, cli), "a")
}

func TestPromoteWaitsForLearnerToStart(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b := c.node("a"), c.node("b")
	c.startNew(a)
	cli := c.client(a)
	ic, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 5 * time.Second
	started := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		started <- c.start(b, ic, "existing")
	}()
	begin := time.Now()
	err = cli.Promote(ctx, b.member())
	took := time.Since(begin)
	if serr := <-started; serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if took < delay {
		t.Errorf("promoted after %s, before the learner started (%s)", took, delay)
	}
	t.Logf("promoted %s after the call, %s after the learner started", took, took-delay)
	wantVoters(t, c.members(ctx, cli), "a", "b")
}

func TestAddTwiceBeforeStart(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b := c.node("a"), c.node("b")
	c.startNew(a)
	cli := c.client(a)
	first, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	second, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("initial cluster changed: %s, then %s", first, second)
	}
	ms, err := cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Errorf("members %v, want a and one learner for b", ms)
	}
}

func TestAddReplacesAbandonedLearner(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b := c.node("a"), c.node("b")
	c.startNew(a)
	// b's first attempt, from an address it no longer has, never started.
	oldPeer := "https://" + freeAddr(t)
	if _, err := c.raw(a).MemberAddAsLearner(ctx, []string{oldPeer}); err != nil {
		t.Fatal(err)
	}
	cli := c.client(a)
	ic, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=" + a.peerURL + ",b=" + b.peerURL; ic != want {
		t.Fatalf("initial cluster %s, want %s", ic, want)
	}
	ms := c.members(ctx, cli)
	if m := ms[""]; len(ms) != 2 || m.PeerURLs[0] != b.peerURL {
		t.Fatalf("members %v, want a and a learner at %s only", ms, b.peerURL)
	}
	c.mustStart(b, ic, "existing")
	if err := cli.Promote(ctx, b.member()); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, c.members(ctx, cli), "a", "b")
}

func TestAddRejoinsWipedVoter(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b, cc := c.node("a"), c.node("b"), c.node("c")
	c.startNew(a, b, cc)
	if _, err := c.raw(a).Put(ctx, "before", "wipe"); err != nil {
		t.Fatal(err)
	}
	cli := c.client(a, cc)
	oldID := c.members(ctx, cli)["b"].ID
	c.wipe(b)

	ic, err := cli.Add(ctx, b.member(), true)
	if err != nil {
		t.Fatal(err)
	}
	ms := c.members(ctx, cli)
	if m := ms[""]; len(ms) != 3 || !m.Learner || m.ID == oldID || m.PeerURLs[0] != b.peerURL {
		t.Fatalf("members %v, want a, c and a new learner at %s (old ID %x)", ms, b.peerURL, oldID)
	}
	c.mustStart(b, ic, "existing")
	if err := cli.Promote(ctx, b.member()); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, c.members(ctx, cli), "a", "b", "c")
	resp, err := c.raw(b).Get(ctx, "before")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get through the rejoined member: %v, %v", resp, err)
	}
}

// Two voters, one wiped and down: removing it would need both to commit,
// so Add refuses at once instead of waiting for a commit that never comes,
// and changes nothing.
func TestAddRefusesWipedVoterWithoutQuorum(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a, b := c.node("a"), c.node("b")
	c.startNew(a, b)
	cli := c.client(a)
	before, err := cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.wipe(b)

	begin := time.Now()
	_, err = cli.Add(ctx, b.member(), true)
	if !errors.Is(err, ErrNoQuorum) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err = %v, want ErrNoQuorum naming b", err)
	}
	t.Logf("refused after %s: %v", time.Since(begin).Round(time.Millisecond), err)
	if err := cli.Remove(ctx, b.member()); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("remove: err = %v, want ErrNoQuorum", err)
	}

	after, err := c.raw(a).MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(after.Members); len(got) != 2 || !slices.EqualFunc(before, got, sameMember) {
		t.Errorf("members changed: %v, then %v", before, got)
	}
}

func sameMember(x, y MemberStatus) bool { return x.ID == y.ID && x.Learner == y.Learner }

func TestRemoveAbsentIsNoOp(t *testing.T) {
	c := newTestCluster(t)
	ctx := testContext(t)
	a := c.node("a")
	c.startNew(a)
	cli := c.client(a)
	if err := cli.Remove(ctx, Member{Name: "b", PeerURL: "https://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, c.members(ctx, cli), "a")
	if err := cli.Remove(ctx, a.member()); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("remove the only member: err = %v, want ErrLastVoter", err)
	}
	wantVoters(t, c.members(ctx, cli), "a")
}
