package client

import (
	"os"
	"strconv"
	"testing"
)

// hideDefaultProxy points the default proxy file into dir for the test: none of
// the machine's is found, and one the test writes is.
func hideDefaultProxy(t *testing.T, dir string) {
	t.Helper()
	saved := ProxyDir
	ProxyDir = dir
	t.Cleanup(func() { ProxyDir = saved })
}

// The default proxy is where grid-proxy-init and voms-proxy-init write it and look
// for it, /tmp/x509up_u<uid>, whatever $TMPDIR says: batch systems set one per job,
// and a vws that looked there would not find the user's proxy (and vws pki proxy
// would write one the Globus tools never see).
func TestDefaultProxyFileIsInTmpWhateverTMPDIR(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	want := "/tmp/x509up_u" + strconv.Itoa(os.Getuid())
	if got := DefaultProxyFile(); got != want {
		t.Errorf("with TMPDIR=%s, DefaultProxyFile() = %s, want %s (where grid-proxy-init writes it)", os.Getenv("TMPDIR"), got, want)
	}
}
