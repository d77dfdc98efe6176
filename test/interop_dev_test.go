package test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vws-grid/vws/test/harness"
)

func TestInteropDevServer(t *testing.T) {
	if os.Getenv("VWS_DEVSERVER") == "" {
		t.Skip()
	}
	s := harness.Start(t)
	for i := 0; i < 20; i++ {
		s.SeedWorkspace(t, fmt.Sprintf("ws-%d", i), fmt.Sprintf("name-%d", i), nil)
	}
	os.WriteFile("/tmp/vws-dev-url", []byte(s.URL), 0o644)
	time.Sleep(30 * time.Minute)
}
