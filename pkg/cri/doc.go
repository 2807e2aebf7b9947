// Package cri talks to the container runtime: the images a node needs,
// whether they are there, importing them from archives, pulling what is
// still missing, container logs, and the runtime's own configuration where
// it must agree with kubeadm's (sandbox image, cgroup driver).
package cri
