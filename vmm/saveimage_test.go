package vmm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSaveImageUnfinished: libvirt's QEMU driver heads a save image with
// "LibvirtQemudPart" until it is complete; such a file, or one too short for any
// header, restores nothing. A complete image and other drivers' images are not
// judged unfinished.
func TestSaveImageUnfinished(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content string
		unfinished    bool
	}{
		{"complete", "LibvirtQemudSave\x02\x00\x00\x00 and the RAM", false},
		{"partial", "LibvirtQemudPart\x02\x00\x00\x00 and half the RAM", true},
		{"no header yet", "Libvirt", true},
		{"empty", "", true},
		{"another driver's", "libvirt-xml\n \x00 \r and the RAM", false},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := SaveImageUnfinished(path)
		if err != nil || got != c.unfinished {
			t.Errorf("%s: unfinished %v (%v), want %v", c.name, got, err, c.unfinished)
		}
	}
	if _, err := SaveImageUnfinished(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file is judged")
	}
}
