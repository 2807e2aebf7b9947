// Package pki renders the control-plane public key infrastructure that
// `kubeadm init phase certs all` creates: three CAs (ca, front-proxy-ca,
// etcd/ca), the leaf certificates they sign, and the service-account key
// pair, with kubeadm's file names, subjects, SANs and key usages.
//
// Render is pure: it reads what already exists through an fs.FS rooted at
// the host root and returns every file the PKI consists of, leaving the
// writing to rootfs.Writer. What exists is kept when it is still right, so
// a second run returns byte-identical files:
//
//   - A CA with its key is always reused, never replaced. A CA certificate
//     whose key does not match it, or that cannot be parsed, is an error.
//   - A CA certificate without its key is an external CA: every leaf it
//     signs must already exist and verify, and nothing is generated for it.
//   - A leaf is reused byte-for-byte when its key matches, uses the
//     configured algorithm, it chains to the current CA, carries the subject,
//     usages and (at least) the SANs the configuration asks for, and is not
//     due for renewal (see RenewBefore). Otherwise it is re-issued from the
//     same CA, keeping its key when that key is still usable, and the old
//     certificate (and a replaced key) is returned as a backup file
//     <name>.crt.bak-<UTC timestamp>.
//   - sa.key is kept whenever it parses (replacing it would invalidate every
//     service-account token); sa.pub is re-derived from it if needed.
package pki
