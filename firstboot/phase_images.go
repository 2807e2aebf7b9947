package firstboot

import (
	"context"
	"fmt"
	"slices"

	"github.com/kubeboot/kubeboot/pkg/cri"
	"github.com/kubeboot/kubeboot/pkg/images"
)

var imagesPhase = Phase{
	Name:  "images",
	Short: "Import the control-plane images from the archive directory, then pull what is still missing",
	Inputs: func(r *Run) (any, error) {
		files, _ := cri.ArchiveFiles(r.Writer.HostPath(r.Cfg.Boot.ImageArchiveDir))
		// The archives' names stand for their contents: reading every
		// archive's index here would cost each re-run a second or so.
		return []any{images.List(r.Cfg), r.worker(), files, r.Cfg.Init.NodeRegistration.CRISocket}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		nr := r.Cfg.Init.NodeRegistration
		client, err := cri.Dial(ctx, nr.CRISocket)
		if err != nil {
			return "", fmt.Errorf("container runtime at %s: %w", nr.CRISocket, err)
		}
		defer client.Close()
		v, err := client.Version(ctx)
		if err != nil {
			return "", err
		}
		// The runtime's own configuration: the pause image it will use for
		// sandboxes (the air-gap trap) and its cgroup driver.
		cc, err := cri.ReadContainerdConfig(r.Writer.HostPath(cri.DefaultContainerdConfig))
		if err == nil && v.RuntimeName == "containerd" {
			warning, cerr := cri.CheckContainerd(cc, r.Cfg, v.RuntimeVersion)
			if warning != "" {
				r.warn("images", warning)
			}
			if cerr != nil {
				return "", cerr
			}
		}
		imp, err := cri.NewImporter(v, nr.CRISocket, cc)
		if err != nil {
			r.warn("images", err.Error())
			imp = nil
		}
		e := cri.Ensure{
			Runtime:    client,
			Importer:   imp,
			ArchiveDir: r.Writer.HostPath(r.Cfg.Boot.ImageArchiveDir),
			Policy:     cri.PullPolicy(nr.ImagePullPolicy),
			Parallel:   nr.ImagePullSerial != nil && !*nr.ImagePullSerial,
			Progress: func(ir cri.ImageReport) {
				r.Log.Info("image", "report", ir.String())
			},
		}
		wanted, declared := wantedImages(r)
		e.Declared = declared
		rep, err := e.Run(ctx, wanted)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (%s %s)", rep.Summary(), v.RuntimeName, v.RuntimeVersion), nil
	},
}

// wantedImages are kubeadm's images for this node (a worker needs no
// control-plane images) plus every other image the archive directory
// holds: an add-on's images (a CNI, say) ship beside the control plane's,
// and an air-gapped node has no other way to get them. declared is what
// each readable archive holds, for the import to use without reading it
// again.
func wantedImages(r *Run) (list []string, declared map[string][]string) {
	all := images.List(r.Cfg)
	list = all
	if r.worker() {
		list = images.Worker(r.Cfg)
	}
	declared = map[string][]string{}
	files, _ := cri.ArchiveFiles(r.Writer.HostPath(r.Cfg.Boot.ImageArchiveDir))
	for _, f := range files {
		names, err := cri.ArchiveImages(f)
		if err != nil {
			// Ensure reads it again and reports it.
			continue
		}
		declared[f] = names
		for _, n := range names {
			known := func(l string) bool { return cri.SameImage(l, n) }
			if !slices.ContainsFunc(all, known) && !slices.ContainsFunc(list, known) {
				list = append(list, n)
			}
		}
	}
	return list, declared
}

// worker tells whether this node runs no control plane: it joins, and not
// as a control-plane node.
func (r *Run) worker() bool { return r.Join != nil && r.Join.Join.ControlPlane == nil }
