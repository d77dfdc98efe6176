package manager

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vws-grid/vws/vmm"
)

// referencePaths lists the fields under t (by dotted path) whose values can share
// memory between copies: slices, maps, pointers, interfaces, channels, functions.
func referencePaths(t reflect.Type, prefix string) []string {
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			out = append(out, referencePaths(f.Type, prefix+"."+f.Name)...)
		}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice {
			out = append(out, prefix)
		}
		out = append(out, referencePaths(t.Elem(), prefix+"[]")...)
	case reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
		out = append(out, prefix)
	}
	return out
}

// TestRecordCloneCoversEveryReference fails when a field that clone does not copy
// (a new slice, map or pointer in the record or its Spec) is added.
func TestRecordCloneCoversEveryReference(t *testing.T) {
	got := referencePaths(reflect.TypeFor[record](), "record")
	want := []string{"record.Shared", "record.Spec.Disks", "record.Spec.NICs"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the record's reference fields are %v; clone copies %v: teach clone the new ones", got, want)
	}
}

func sampleRecord(key string) *record {
	return &record{Version: journalVersion, Key: key, Phase: phaseDeployed, State: stateRunning, Token: "tok",
		Shared: []string{"sha256:" + strings.Repeat("a", 64)},
		Spec: vmm.Spec{Name: domainName(key), UUID: domainUUID(key), MemoryMiB: 64, CPUs: 1,
			Disks: []vmm.Disk{{Path: "/x/run.qcow2", Format: "qcow2", Target: "vda", Boot: true}},
			NICs:  []vmm.NIC{{MAC: derivedMAC(key, 0), Kind: "network", Source: "default"}}}}
}

// TestJournalGetIsACopy: a caller changing the record it got (as every operation does
// before it puts it) changes nothing another caller reads.
func TestJournalGetIsACopy(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	r := sampleRecord("ws")
	if err := j.put(r); err != nil {
		t.Fatal(err)
	}
	r.State, r.Shared[0], r.Spec.Disks[0].Path, r.Spec.NICs[0].Source = stateShutdown, "changed", "/changed", "changed"
	g, err := j.get("ws")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, sampleRecord("ws")) {
		t.Fatalf("changing the record after the put changed the journal's: %+v", g)
	}
	g.State, g.Shared[0], g.Spec.Disks[0].Path, g.Spec.NICs[0].Source = stateShutdown, "changed", "/changed", "changed"
	g.Shared = append(g.Shared, "more")
	if again, _ := j.get("ws"); !reflect.DeepEqual(again, sampleRecord("ws")) {
		t.Fatalf("changing a record got changed the journal's: %+v", again)
	}
}

// TestJournalReadsTheDiskOnce: this process is the journal's only writer, so a record
// it wrote or read is served from memory; a fresh journal (a restarted manager)
// reads the disk.
func TestJournalReadsTheDiskOnce(t *testing.T) {
	dir := t.TempDir()
	j := &journal{dir: dir}
	if err := j.put(sampleRecord("ws")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(j.path("ws"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if g, err := j.get("ws"); err != nil || g.State != stateRunning {
		t.Fatalf("get after the file changed under the journal: %+v, %v; want the record it wrote", g, err)
	}
	if _, err := (&journal{dir: dir}).get("ws"); err == nil {
		t.Fatal("a fresh journal did not read the disk")
	}
	// Read once from disk, then from memory.
	fresh := &journal{dir: t.TempDir()}
	if err := (&journal{dir: fresh.dir}).put(sampleRecord("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.get("k"); err != nil {
		t.Fatal(err)
	}
	os.Remove(fresh.path("k"))
	if _, err := fresh.get("k"); err != nil {
		t.Fatalf("a record read once was read from disk again: %v", err)
	}
	// A removal is forgotten too.
	if err := fresh.remove("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.get("k"); !os.IsNotExist(err) {
		t.Fatalf("get after remove: %v", err)
	}
}

// TestJournalAllWhileRecordsGo: a record removed (an undeploy finishing) between all's
// listing of the directory and its read is gone, not "unreadable": the reconciler
// logged a false error, and skipped eviction for the round.
func TestJournalAllWhileRecordsGo(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		data, err := json.Marshal(sampleRecord("ws"))
		if err != nil {
			t.Error(err)
			return
		}
		for i := range 3000 {
			// Written behind the journal's back (as a previous run left it, so all
			// reads it from disk) and removed as an undeploy removes it.
			key := fmt.Sprintf("ws-%d", i)
			staged := j.path(key) + ".staged"
			if err := os.WriteFile(staged, bytes.Replace(data, []byte(`"ws"`), []byte(`"`+key+`"`), 1), 0o600); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(staged, j.path(key)); err != nil {
				t.Error(err)
				return
			}
			if err := j.remove(key); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var errs []error
	for running := true; running && len(errs) == 0; {
		select {
		case <-done:
			running = false
		default:
		}
		_, errs = j.all()
	}
	<-done
	if len(errs) > 0 {
		t.Fatalf("all, while records are removed: %v", errs)
	}
}
