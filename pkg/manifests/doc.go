// Package manifests renders the static Pod manifests that `kubeadm init
// phase etcd local` and `kubeadm init phase control-plane all` write:
// etcd.yaml, kube-apiserver.yaml, kube-controller-manager.yaml and
// kube-scheduler.yaml, as kubeadm 1.37 builds them.
//
// Rendering is pure: Etcd and ControlPlane take a resolved configuration
// (node name and advertise address filled in by config.Resolve) and return
// files; they read nothing from the host and write nothing.
//
// What matches kubeadm 1.37:
//
//   - Command lines: kubeadm's default flags sorted by name (then value),
//     followed by the component's extraArgs in the order given. A default
//     whose name appears in extraArgs is dropped, however often the name is
//     repeated there, and every repetition is kept (v1beta4 has no merge
//     methods, so an extra argument always replaces). authorization-mode is
//     only a default when extraArgs set neither it nor authorization-config.
//     An etcd.local.extraArgs advertise-client-urls replaces the
//     apiserver's default --etcd-servers, as in kubeadm.
//   - Images, labels, annotations, hostNetwork, priority, seccomp profile,
//     resource requests, named "probe-port" ports and the liveness,
//     readiness and startup probes, whose failure threshold covers
//     timeouts.controlPlaneComponentHealthCheck.
//   - Volumes and mounts, sorted by name; extraVolumes replace a default
//     volume of the same name. imagePullPolicy is IfNotPresent, as kubeadm
//     hard-codes it for static Pods.
//   - Files are mode 0600 in kubelet.staticPodPath (kubeadm always uses
//     /etc/kubernetes/manifests, which is the default of staticPodPath).
//
// Where kubeboot decides differently, because a renderer must not look at
// the machine it runs on:
//
//   - Trust store directories. kubeadm mounts /etc/ssl/certs and, next to
//     it, each of /etc/pki/ca-trust, /etc/pki/tls/certs,
//     /etc/ca-certificates, /usr/share/ca-certificates and
//     /usr/local/share/ca-certificates that exists on the host when it
//     runs. Here Options.CACertDirs lists them; nil means the Debian set
//     (/etc/ca-certificates, /usr/share/ca-certificates,
//     /usr/local/share/ca-certificates), which is what kubeadm mounts on
//     Debian and Ubuntu. Callers on other images pass their own list, or
//     DetectCACertDirs of the image's root, once, at image build time.
//   - Proxy variables. kubeadm copies its own *_proxy environment
//     variables into the control-plane Pods; here they come from
//     Options.ProxyEnv.
//   - External CA. kubeadm empties the controller-manager's
//     --cluster-signing-* flags when ca.crt exists without ca.key; here
//     Options.ExternalCA says so.
//   - The apiserver flags and volumes of audit logging and encryption at
//     rest (kubeboot features; kubeadm users add them with extraArgs) come
//     in Options.APIServer. They count as defaults: sorted among kubeadm's
//     flags, and the user's extraArgs and extraVolumes replace them.
//   - External etcd certificate directories are mounted unless they lie in
//     the certificates directory or a trust directory that is mounted;
//     kubeadm compares plain string prefixes against all five candidate
//     trust directories, mounted or not.
//
// Not implemented: kubeadm's patches directory and the
// RootlessControlPlane feature gate.
package manifests
