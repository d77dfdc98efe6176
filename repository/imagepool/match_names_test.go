package imagepool

import (
	"context"
	"testing"
)

// TestMatchOneContentUnderTwoNames: a second name for content already in the pool
// (README: "a second name for the same content") leaves one image to stand on. A
// request that both names fit picks that content, rather than being refused as
// ambiguous with advice — name the image, or ask for more — that asking for more
// cannot follow: both names carry the same software.
func TestMatchOneContentUnderTwoNames(t *testing.T) {
	tp := openTestPool(t)
	data := []byte("debian 12")
	meta := Meta{OS: "linux/debian/12", Arch: "x86_64", Kernel: "6.1.0-18-amd64"}
	meta.Name = "debian-12"
	a, _ := mustImport(t, tp.Pool, data, meta)
	meta.Name = "debian-stable"
	mustImport(t, tp.Pool, data, meta)
	mustImport(t, tp.Pool, []byte("rocky 9"), Meta{Name: "rocky-9", OS: "linux/rocky/9", Arch: "x86_64"})
	img, err := tp.Match(context.Background(), Meta{OS: "linux/debian", Arch: "x86_64"})
	if err != nil || img.Digest != a.Digest {
		t.Errorf("Match(linux/debian) with one Debian content under two names = %q %s, %v; want %s", img.Name, img.Digest, err, a.Digest)
	}
}
