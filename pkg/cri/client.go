package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize is the kubelet's limit for CRI messages; an image list on a
// busy node is larger than gRPC's 4 MiB default.
const maxMsgSize = 16 << 20

// Runtime is what the phases need from the container runtime. *Client
// implements it; tests of the phases use a fake.
type Runtime interface {
	Version(ctx context.Context) (Version, error)
	ImageStatus(ctx context.Context, image string) (*Image, error)
	PullImage(ctx context.Context, image string) (string, error)
	ListImages(ctx context.Context) ([]Image, error)
	Logs(ctx context.Context, container string, lines int) (string, error)
}

// Version is what the runtime says about itself.
type Version struct {
	RuntimeName       string // "containerd"
	RuntimeVersion    string // "1.6.20~ds1"
	RuntimeAPIVersion string // "v1"
}

// Image is one image the runtime holds.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	Size        uint64
	Pinned      bool
}

// Container is one container the runtime knows, running or not.
type Container struct {
	ID        string
	Name      string // the container's name in its pod
	Pod       string // the pod's name, from the kubelet's labels
	Namespace string
	State     string // CONTAINER_RUNNING, CONTAINER_EXITED, ...
	CreatedAt time.Time
	Attempt   uint32
}

// ContainerStatus is the part of the runtime's status the messages need.
type ContainerStatus struct {
	Container
	ExitCode   int32
	Reason     string
	Message    string
	FinishedAt time.Time
	LogPath    string
}

// Client is a CRI client over the runtime's unix socket.
type Client struct {
	endpoint string
	conn     *grpc.ClientConn
	runtime  runtimeapi.RuntimeServiceClient
	images   runtimeapi.ImageServiceClient
}

var _ Runtime = (*Client)(nil)

// Dial connects to a CRI endpoint such as
// unix:///var/run/containerd/containerd.sock (nodeRegistration.criSocket)
// and checks that a runtime answers on it.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("cri: %s: no runtime socket (is containerd running?): %w", endpoint, err)
	}
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("cri: %s: %w", endpoint, err)
	}
	c := &Client{
		endpoint: endpoint,
		conn:     conn,
		runtime:  runtimeapi.NewRuntimeServiceClient(conn),
		images:   runtimeapi.NewImageServiceClient(conn),
	}
	if _, err := c.Version(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// socketPath accepts unix:///path and a bare absolute path, as the kubelet does.
func socketPath(endpoint string) (string, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok && strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("cri: endpoint %q: only unix:// sockets are supported", endpoint)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("cri: endpoint %q: expected unix:///absolute/path", endpoint)
	}
	return p, nil
}

// Endpoint is the socket this client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Version asks the runtime for its name and version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	r, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return Version{}, fmt.Errorf("cri: %s: the runtime does not serve CRI v1 (runtime.v1.RuntimeService): %w", c.endpoint, err)
		}
		return Version{}, fmt.Errorf("cri: %s: version: %w", c.endpoint, err)
	}
	return Version{RuntimeName: r.RuntimeName, RuntimeVersion: r.RuntimeVersion, RuntimeAPIVersion: r.RuntimeApiVersion}, nil
}

// ImageStatus returns the image, or nil without error when the runtime
// does not have it.
func (c *Client) ImageStatus(ctx context.Context, image string) (*Image, error) {
	r, err := c.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return nil, fmt.Errorf("cri: image status %s: %w", image, err)
	}
	if r.Image == nil {
		return nil, nil
	}
	img := imageFrom(r.Image)
	return &img, nil
}

// ImagePresent tells whether the runtime has the image.
func (c *Client) ImagePresent(ctx context.Context, image string) (bool, error) {
	img, err := c.ImageStatus(ctx, image)
	return img != nil, err
}

// PullImage pulls one image and returns the runtime's reference to it
// (its image ID). The CRI reports no progress within a pull.
func (c *Client) PullImage(ctx context.Context, image string) (string, error) {
	r, err := c.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return "", fmt.Errorf("cri: pull %s: %w", image, rpcError{err})
	}
	return r.ImageRef, nil
}

// ListImages returns every image the runtime holds.
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	r, err := c.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("cri: list images: %w", err)
	}
	out := make([]Image, 0, len(r.Images))
	for _, i := range r.Images {
		out = append(out, imageFrom(i))
	}
	return out, nil
}

func imageFrom(i *runtimeapi.Image) Image {
	return Image{ID: i.Id, RepoTags: i.RepoTags, RepoDigests: i.RepoDigests, Size: i.Size, Pinned: i.Pinned}
}

// The labels the kubelet puts on every container it creates.
const (
	labelContainerName = "io.kubernetes.container.name"
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
)

// Containers returns the containers with this name in their pod (the
// kubelet's io.kubernetes.container.name label), newest first, whatever
// their state.
func (c *Client) Containers(ctx context.Context, name string) ([]Container, error) {
	r, err := c.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{labelContainerName: name}},
	})
	if err != nil {
		return nil, fmt.Errorf("cri: list containers named %s: %w", name, err)
	}
	out := make([]Container, 0, len(r.Containers))
	for _, k := range r.Containers {
		ct := Container{
			ID:        k.Id,
			Name:      k.Labels[labelContainerName],
			Pod:       k.Labels[labelPodName],
			Namespace: k.Labels[labelPodNamespace],
			State:     k.State.String(),
			CreatedAt: time.Unix(0, k.CreatedAt),
		}
		if k.Metadata != nil {
			ct.Attempt = k.Metadata.Attempt
			if ct.Name == "" {
				ct.Name = k.Metadata.Name
			}
		}
		out = append(out, ct)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// ContainerStatus returns a container's state, exit code and log path.
func (c *Client) ContainerStatus(ctx context.Context, id string) (*ContainerStatus, error) {
	r, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, fmt.Errorf("cri: container status %s: %w", id, err)
	}
	s := r.Status
	if s == nil {
		return nil, fmt.Errorf("cri: container status %s: empty answer", id)
	}
	cs := &ContainerStatus{
		Container: Container{
			ID:        s.Id,
			Name:      s.Labels[labelContainerName],
			Pod:       s.Labels[labelPodName],
			Namespace: s.Labels[labelPodNamespace],
			State:     s.State.String(),
			CreatedAt: time.Unix(0, s.CreatedAt),
		},
		ExitCode: s.ExitCode,
		Reason:   s.Reason,
		Message:  s.Message,
		LogPath:  s.LogPath,
	}
	if s.FinishedAt > 0 {
		cs.FinishedAt = time.Unix(0, s.FinishedAt)
	}
	if s.Metadata != nil {
		cs.Attempt = s.Metadata.Attempt
	}
	return cs, nil
}

// Logs returns the last lines of the newest container with this name
// (e.g. "kube-apiserver"), read from the log file the runtime reports.
// When the newest container has written nothing yet (it has just been
// restarted), the previous one's log is shown instead. An exited
// container's exit code comes first, on a line of its own.
func (c *Client) Logs(ctx context.Context, container string, lines int) (string, error) {
	cts, err := c.Containers(ctx, container)
	if err != nil {
		return "", err
	}
	if len(cts) == 0 {
		return "", fmt.Errorf("cri: no container named %s: the kubelet has not created it", container)
	}
	var firstErr error
	for i, ct := range cts {
		if i == 2 {
			break
		}
		st, err := c.ContainerStatus(ctx, ct.ID)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if st.LogPath == "" {
			if firstErr == nil {
				firstErr = fmt.Errorf("cri: container %s (%s): the runtime reports no log path", container, short(ct.ID))
			}
			continue
		}
		text, err := TailLog(st.LogPath, lines)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("cri: container %s (%s): %w", container, short(ct.ID), err)
			}
			continue
		}
		if text == "" && i+1 < len(cts) {
			continue
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED.String() {
			head := fmt.Sprintf("[container %s exited with code %d", short(st.ID), st.ExitCode)
			if st.Reason != "" {
				head += " (" + st.Reason + ")"
			}
			if st.Attempt > 0 {
				head += fmt.Sprintf(", restart %d", st.Attempt)
			}
			text = head + "]\n" + text
		}
		return text, nil
	}
	if firstErr == nil {
		firstErr = errors.New("cri: no log")
	}
	return "", firstErr
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// rpcError prints a gRPC error's message without the "rpc error: code =
// ... desc =" wrapping, which says nothing to a user, and keeps the status
// for errors.As and status.Code.
type rpcError struct{ err error }

func (e rpcError) Error() string {
	if s, ok := status.FromError(e.err); ok {
		return s.Message()
	}
	return e.err.Error()
}

func (e rpcError) Unwrap() error { return e.err }
