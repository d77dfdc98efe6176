package factory

import (
	"testing"
	"time"
)

// TestCreateDoesNotDropAnOSVersionGivenWithoutDistribution: sw:os takes a version
// without a distribution (both are optional). A description asking for linux version
// 7 must not be given the pool's only Linux image, version 12, as if it had asked for
// any Linux: the request is matched as it was made, or refused as one the Factory
// cannot match, never silently widened.
func TestCreateDoesNotDropAnOSVersionGivenWithoutDistribution(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := &recordingRegistry{images: poolOfTwo()[:1]} // debian-12 alone: linux/debian/12
	_, err := runCreate(t, reg, now, `<vw:virtualWorkspace><vw:category>vm</vw:category>
		<sw:software><sw:os><sw:family>linux</sw:family><sw:version>7</sw:version></sw:os></sw:software></vw:virtualWorkspace>`)
	if err == nil && reg.got != nil {
		t.Errorf("a description asking for linux version 7 was created on %s (debian-12, linux/debian/12)", reg.got.BaseImage)
	}
}
