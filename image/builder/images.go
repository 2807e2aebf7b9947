package main

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubeboot/kubeboot/image/addons"
	"github.com/kubeboot/kubeboot/pkg/config"
)

// pathEnv is every image's PATH: the bare command names in kubeadm's static
// pod manifests (`kube-apiserver`, `etcd`) and the tools kube-proxy runs
// (`iptables`, `nft`) resolve through it.
const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// An image is one archive the builder writes.
type image struct {
	// name is the image's last path element: the name on the command line
	// and the start of the archive's file name.
	name string
	// ref is the image's full name: for kubeadm's images exactly as
	// `kubeadm config images list` prints it for the default
	// imageRepository; for an add-on's, as its manifest in image/addons
	// names it.
	ref string
	// addon marks an add-on's image, which kubeadm does not list.
	addon  bool
	config v1.Config
	// files is the layer's content apart from Debian packages.
	files tree
	// debs lists Debian packages whose files also go into the layer, with
	// what Debian's maintainer scripts would have set up
	// (alternatives): kube-proxy's and flannel's.
	debs []string
	// checks run inside the layer after it is built (as root).
	checks []check
	// about says what the layer holds, for the image's history.
	about string
}

// archiveName is the image's file in the archive directory:
// kube-apiserver_v1.37.2.tar, etcd_3.7.0-0.tar.
func (im image) archiveName() string {
	return im.name + "_" + im.ref[strings.LastIndex(im.ref, ":")+1:] + ".tar"
}

// inputs are the files the images are made of.
type inputs struct {
	kubernetesVersion string
	// k8sBin holds kube-apiserver, kube-controller-manager,
	// kube-scheduler and kube-proxy; etcdBin holds etcd (and etcdctl).
	k8sBin, etcdBin string
	// pause and coredns are the binaries the builder made, and
	// flannelBin and flannelCNIBin the directories of flannel's
	// (flanneld, install-conf) and of its CNI plugin (flannel).
	pause, coredns            string
	flannelBin, flannelCNIBin string
}

// kubeProxyDebs are the Debian packages whose files kube-proxy's image
// carries: the tools kube-proxy runs (iptables and ip6tables with their
// -save and -restore, in nft and legacy variants; nft; ipset; conntrack)
// and every shared library they load, resolved from the binaries' ELF
// DT_NEEDED entries (the builder checks that closure on every build);
// libc6 for glibc and the dynamic loader; netbase for /etc/protocols and
// /etc/services.
var kubeProxyDebs = []string{
	"libc6",
	"iptables", "libxtables12", "libip4tc2", "libip6tc2", "libnftnl11", "libmnl0",
	"nftables", "libnftables1", "libjansson4", "libgmp10", "libedit2", "libbsd0", "libmd0", "libtinfo6",
	"ipset", "libipset13",
	"conntrack", "libnetfilter-conntrack3", "libnfnetlink0",
	"netbase",
}

// flannelDebs are the Debian packages whose files flannel's image
// carries: iptables with its -save and -restore (nft and legacy
// variants), which flanneld runs for its masquerading and forwarding
// rules, and nft, which it runs instead when net-conf.json says
// EnableNFTables; their libraries (Debian's dependencies, and the ELF
// closure the builder checks); libc6; netbase.
var flannelDebs = []string{
	"libc6",
	"iptables", "libxtables12", "libip4tc2", "libip6tc2", "libnftnl11", "libmnl0", "libnetfilter-conntrack3", "libnfnetlink0",
	"nftables", "libnftables1", "libjansson4", "libgmp10", "libedit2", "libbsd0", "libmd0", "libtinfo6",
	"netbase",
}

// images lists kubeadm's images for the default imageRepository, in
// kubeadm's order, then the add-ons' images, made of the given inputs.
func images(in inputs) []image {
	repo := config.DefaultImageRepository
	k8s := func(name string) image {
		return image{
			name:   name,
			ref:    repo + "/" + name + ":" + in.kubernetesVersion,
			config: v1.Config{Env: []string{pathEnv}, WorkingDir: "/"},
			files:  base().with("usr/local/bin/"+name, path.Join(in.k8sBin, name), 0o755),
			checks: []check{{argv: []string{name, "--version"}, want: "Kubernetes " + in.kubernetesVersion}},
			about:  name + " " + in.kubernetesVersion + " at /usr/local/bin",
		}
	}
	proxy := k8s("kube-proxy")
	proxy.debs = kubeProxyDebs
	proxy.about = "kube-proxy " + in.kubernetesVersion + " at /usr/local/bin, with iptables (nft by default), nft, ipset and conntrack from Debian"
	proxy.checks = append(proxy.checks, kubeProxyToolChecks...)

	// kubeadm's etcd tag names the etcd release its manifests were tested
	// with (3.7.0-0); the binary is the 3.7.x the project builds (3.7.3).
	// The tag is what kubeadm and kubelet look for, so it stays.
	etcd := image{
		name:   "etcd",
		ref:    repo + "/etcd:" + config.EtcdVersion,
		config: v1.Config{Env: []string{pathEnv}, WorkingDir: "/"},
		files: base().
			with("usr/local/bin/etcd", path.Join(in.etcdBin, "etcd"), 0o755).
			with("usr/local/bin/etcdctl", path.Join(in.etcdBin, "etcdctl"), 0o755),
		checks: []check{{argv: []string{"etcd", "--version"}, want: "etcd Version: " + etcdMinor(config.EtcdVersion)}},
		about:  "etcd and etcdctl at /usr/local/bin",
	}

	coredns := image{
		name: "coredns",
		ref:  repo + "/coredns/coredns:" + config.CoreDNSVersion,
		config: v1.Config{
			Env:          []string{pathEnv},
			WorkingDir:   "/",
			Entrypoint:   []string{"/coredns"},
			ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}},
		},
		files:  base().with("coredns", in.coredns, 0o755),
		checks: []check{{argv: []string{"/coredns", "-version"}, want: "CoreDNS-" + strings.TrimPrefix(config.CoreDNSVersion, "v")}},
		about:  "CoreDNS " + config.CoreDNSVersion + " at /coredns",
	}

	// As upstream's: the binary alone, run as 65535.
	pause := image{
		name: "pause",
		ref:  repo + "/pause:" + config.PauseVersion,
		config: v1.Config{
			Env:        []string{pathEnv},
			WorkingDir: "/",
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
		},
		files:  tree{}.with("pause", in.pause, 0o755),
		checks: []check{{argv: []string{"/pause", "-v"}, want: "pause " + config.PauseVersion}},
		about:  "kubeboot's pause " + config.PauseVersion + " at /pause",
	}

	// flanneld and the CNI plugin its init container installs on the
	// node, with the iptables and nft flanneld runs.
	flannel := image{
		name:  "flannel",
		ref:   addons.FlannelImage,
		addon: true,
		config: v1.Config{
			Env:        []string{pathEnv},
			WorkingDir: "/",
			Entrypoint: []string{"/flanneld"},
		},
		files: base().
			with("flanneld", path.Join(in.flannelBin, "flanneld"), 0o755).
			with("install-conf", path.Join(in.flannelBin, "install-conf"), 0o755).
			with("flannel", path.Join(in.flannelCNIBin, "flannel"), 0o755),
		debs: flannelDebs,
		checks: append([]check{
			{argv: []string{"/flanneld", "--version"}, want: addons.FlannelVersion},
			{argv: []string{"/flannel"}, want: "CNI flannel plugin " + flannelCNIVersion},
			// What the init containers do: copy a file, keeping its mode.
			{argv: []string{"/install-conf", "/flannel", "/tmp/flannel"}},
			{argv: []string{"/tmp/flannel"}, want: "CNI flannel plugin " + flannelCNIVersion},
		}, flannelToolChecks...),
		about: "flanneld " + addons.FlannelVersion + " at /flanneld, the flannel CNI plugin " + flannelCNIVersion +
			" at /flannel, install-conf, and iptables (nft by default) and nft from Debian",
	}

	return []image{
		k8s("kube-apiserver"), k8s("kube-controller-manager"), k8s("kube-scheduler"), proxy,
		coredns, pause, etcd,
		flannel,
	}
}

// etcdMinor is "3.7." for kubeadm's etcd tag "3.7.0-0": the release line
// the etcd binary must belong to.
func etcdMinor(tag string) string {
	parts := strings.SplitN(tag, ".", 3)
	if len(parts) < 2 {
		return tag
	}
	return parts[0] + "." + parts[1] + "."
}

// base is what every image but pause has besides its binaries: the users
// and groups of a distroless base, name service order, and a /tmp.
func base() tree {
	t := tree{}
	t.bytes("etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), 0o644)
	t.bytes("etc/group", []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"), 0o644)
	t.bytes("etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"), 0o644)
	t.dir("root", 0o700)
	t.dir("home/nonroot", 0o700)
	t.dir("tmp", fs.ModeSticky|0o777)
	return t
}

func (t tree) with(p, src string, perm fs.FileMode) tree {
	t.file(p, src, perm)
	return t
}

// kubeProxyToolChecks run each command kube-proxy runs, by the name it
// uses, inside the layer: the libraries resolve and iptables is the nft
// variant.
var kubeProxyToolChecks = []check{
	{argv: []string{"iptables", "--version"}, want: "(nf_tables)"},
	{argv: []string{"iptables-save", "--version"}, want: "(nf_tables)"},
	{argv: []string{"iptables-restore", "--version"}, want: "(nf_tables)"},
	{argv: []string{"ip6tables", "--version"}, want: "(nf_tables)"},
	{argv: []string{"ip6tables-save", "--version"}, want: "(nf_tables)"},
	{argv: []string{"ip6tables-restore", "--version"}, want: "(nf_tables)"},
	{argv: []string{"iptables-legacy", "--version"}, want: "(legacy)"},
	{argv: []string{"ip6tables-legacy-save", "--version"}, want: "(legacy)"},
	{argv: []string{"nft", "--version"}, want: "nftables v"},
	{argv: []string{"ipset", "version"}, want: "ipset v"},
	{argv: []string{"conntrack", "--version"}, want: "conntrack v"},
}

// flannelToolChecks run the commands flanneld runs, by the names it uses.
var flannelToolChecks = []check{
	{argv: []string{"iptables", "--version"}, want: "(nf_tables)"},
	{argv: []string{"iptables-save", "--version"}, want: "(nf_tables)"},
	{argv: []string{"iptables-restore", "--version"}, want: "(nf_tables)"},
	{argv: []string{"ip6tables", "--version"}, want: "(nf_tables)"},
	{argv: []string{"ip6tables-restore", "--version"}, want: "(nf_tables)"},
	{argv: []string{"nft", "--version"}, want: "nftables v"},
}

func (im image) String() string { return fmt.Sprintf("%s (%s)", im.name, im.ref) }
