package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
)

// TestTheEngineNoticesASameSizeEditInOneTick: an administrator revokes alice's
// admin rights by an edit of the same length that lands within the file system's
// timestamp granularity of the version the engine loaded (1 s on ext3, NFSv3 and
// others; a jiffy on ext4). The engine compares only (mtime, size), so the edit is
// never loaded and alice stays admin until some unrelated edit.
func TestTheEngineNoticesASameSizeEditInOneTick(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.conf")
	alice := identity.Identity{DN: "/O=Grid/OU=vws/CN=alice"}
	before := "allow admin /O=Grid/OU=vws/CN=alice\n"
	after := "allow admin /O=Grid/OU=vws/CN=carol\n" // same length
	if len(before) != len(after) {
		t.Fatal("edit must keep the size")
	}
	tick := time.Now().Truncate(time.Second)
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, tick, tick); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(file, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.Rules().Decide(alice, Admin, Resource{}).Allowed {
		t.Fatal("alice is not admin before the edit")
	}
	// Replaced the way editors and configuration management do (write + rename); the
	// new file's mtime falls in the same timestamp tick.
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, tick, tick); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if !e.Rules().Decide(alice, Admin, Resource{}).Allowed {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("3 s after the rules file was replaced (it now reads %q), alice is still admin: the engine kept the old rules", after)
}
