package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestImagesList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{
			name: "defaults",
			args: []string{"list"},
			want: "registry.k8s.io/kube-apiserver:v1.37.2\nregistry.k8s.io/kube-controller-manager:v1.37.2\nregistry.k8s.io/kube-scheduler:v1.37.2\n" +
				"registry.k8s.io/kube-proxy:v1.37.2\nregistry.k8s.io/coredns/coredns:v1.14.6\nregistry.k8s.io/pause:3.10.2\nregistry.k8s.io/etcd:3.7.0-0\n",
		},
		{
			name:  "configuration from standard input",
			args:  []string{"list", "--config", "-"},
			stdin: "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: mirror.example/k8s\nproxy:\n  disabled: true\n",
			want: "mirror.example/k8s/kube-apiserver:v1.37.2\nmirror.example/k8s/kube-controller-manager:v1.37.2\nmirror.example/k8s/kube-scheduler:v1.37.2\n" +
				"mirror.example/k8s/coredns:v1.14.6\nmirror.example/k8s/pause:3.10.2\nmirror.example/k8s/etcd:3.7.0-0\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newImagesCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetIn(strings.NewReader(tc.stdin))
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}
