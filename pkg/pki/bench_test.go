package pki

import (
	"net"
	"testing"
)

func benchSpec(b *testing.B) Spec {
	return Spec{
		NodeName:         "cp-1",
		AdvertiseAddress: net.ParseIP("192.0.2.10"),
		ServiceSubnets:   []*net.IPNet{mustCIDR(b, "10.96.0.0/12")},
		DNSDomain:        "cluster.local",
	}
}

// BenchmarkRender renders a default node from nothing: ECDSA-P256, three
// CAs, seven leaves and the service-account key.
func BenchmarkRender(b *testing.B) {
	spec := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(spec, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderReuse is the second run: everything exists and is kept.
func BenchmarkRenderReuse(b *testing.B) {
	spec := benchSpec(b)
	first, err := Render(spec, nil)
	if err != nil {
		b.Fatal(err)
	}
	existing := fsOf(first.Files)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(spec, existing); err != nil {
			b.Fatal(err)
		}
	}
}
