package userdata

import (
	"context"
	"errors"
	"strings"
)

// Kernel command line parameters kubeboot reads.
const (
	ParamIgnitionURL = "ignition.config.url"
	ParamDatasource  = "ds"
)

// ParseCmdline splits a kernel command line into parameters: words
// separated by white space, double quotes grouping (and dropped). A
// parameter given twice keeps its last value, as the kernel does.
func ParseCmdline(line string) map[string]string {
	params := map[string]string{}
	var word strings.Builder
	inQuote, inWord := false, false
	flush := func() {
		if inWord {
			k, v, _ := strings.Cut(word.String(), "=")
			params[k] = v
		}
		word.Reset()
		inWord = false
	}
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return params
}

// NoCloudParams is cloud-init's "ds=nocloud;s=URL;h=HOST;i=ID".
type NoCloudParams struct {
	SeedFrom   string // s= or seedfrom=: where user-data and meta-data are
	Hostname   string // h= or local-hostname=
	InstanceID string // i= or instance-id=
}

// ParseDatasource reads a ds= value; ok is false unless it names nocloud
// (or nocloud-net).
func ParseDatasource(v string) (p NoCloudParams, ok bool) {
	v = strings.ReplaceAll(v, `\;`, ";")
	fields := strings.Split(v, ";")
	switch strings.ToLower(fields[0]) {
	case "nocloud", "nocloud-net", "nocloud_net":
	default:
		return p, false
	}
	for _, f := range fields[1:] {
		k, val, _ := strings.Cut(f, "=")
		switch k {
		case "s", "seedfrom":
			p.SeedFrom = val
		case "h", "local-hostname":
			p.Hostname = val
		case "i", "instance-id":
			p.InstanceID = val
		}
	}
	return p, true
}

func (s *Sources) cmdline() (map[string]string, error) {
	p := s.Cmdline
	switch p {
	case "-":
		return nil, ErrNotFound
	case "":
		p = DefaultCmdline
	}
	data, err := readSource(s.hostPath(p), "kernel command line "+p)
	if err != nil {
		return nil, err
	}
	return ParseCmdline(string(data)), nil
}

// findCmdline reads ignition.config.url= (http, https, data:) or
// ds=nocloud;s=URL from the kernel command line.
func findCmdline(ctx context.Context, s *Sources) (*Result, error) {
	params, err := s.cmdline()
	if err != nil {
		return nil, err
	}
	var dsWarning string
	ds, isNoCloud := ParseDatasource(params[ParamDatasource])
	if u, ok := params[ParamIgnitionURL]; ok {
		source := "kernel command line " + ParamIgnitionURL + "=" + RedactURL(u)
		if u == "" {
			return nil, badf(source, "empty URL")
		}
		data, err := s.Fetch.get(ctx, u, nil)
		if err != nil {
			return nil, bad(source, err)
		}
		r, err := Decode(ctx, source, data, s.Fetch, s.Root)
		if err != nil {
			return nil, err
		}
		if isNoCloud && ds.SeedFrom != "" {
			dsWarning = "kernel command line: ds=nocloud;s=" + RedactURL(ds.SeedFrom) + " ignored: " + ParamIgnitionURL + " takes precedence"
			r.Warnings = append(r.Warnings, dsWarning)
		}
		return r, nil
	}
	if !isNoCloud || ds.SeedFrom == "" {
		return nil, ErrNotFound
	}
	source := "kernel command line ds=nocloud;s=" + RedactURL(ds.SeedFrom)
	seed, err := seedFrom(ctx, s, ds.SeedFrom)
	if err != nil {
		return nil, bad(source, err)
	}
	return decodeSeed(ctx, source, seed, ds, s)
}

// seedFrom reads user-data and meta-data from a NoCloud seed URL:
// file:// (under the root) or http(s). The URL is a prefix, as cloud-init
// takes it: ".../" + "user-data".
func seedFrom(ctx context.Context, s *Sources, base string) (*Seed, error) {
	if strings.HasPrefix(base, "file://") {
		dir := strings.TrimPrefix(base, "file://")
		return DirSeed{Path: s.hostPath(dir), Name: dir}.Seed(ctx)
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, errors.New("seed URL: only file://, http:// and https:// are supported")
	}
	// A query string applies to the seed; keep it on both fetches.
	prefix, query, _ := strings.Cut(base, "?")
	join := func(name string) string {
		if query != "" {
			return prefix + name + "?" + query
		}
		return prefix + name
	}
	seed := &Seed{Where: RedactURL(base)}
	ud, err := s.Fetch.get(ctx, join("user-data"), nil)
	if err != nil {
		return nil, err
	}
	seed.UserData = ud
	md, err := s.Fetch.get(ctx, join("meta-data"), nil)
	switch {
	case err == nil:
		seed.MetaData = md
	case errors.Is(err, errHTTPNotFound):
	default:
		return nil, err
	}
	return seed, nil
}
