package test

import (
	"net/url"
	"testing"
)

// TestDeployRefusesEditedManifest: the repository's store is edited behind vws's
// back — the workspace's record and its stored signed manifest changed alike, so the
// Repository's own comparison passes — and the Manager's signature check refuses the
// manifest: ImageIntegrityFault, nothing staged or defined, the lock given back.
func TestDeployRefusesEditedManifest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real vws processes with libvirt (make test)")
	}
	t.Parallel()
	dir := t.TempDir()
	a := StartMgrServer(t, MgrServerOptions{Dir: dir, HostName: "manifest-a"})
	ImportGuest(t, a)
	w := CreateWorkspace(t, a, TickerDescription(t))
	name := WSProps(t, w, "name")["name"]
	if name == "" {
		t.Fatal("the workspace has no name")
	}
	u, _ := url.Parse(a.URL)
	a.Kill()

	db, pg := openServerDB(t, a)
	edited := name[:len(name)-1] + "X"
	// The private record is JSON, where the signed manifest's < and > are escaped.
	edit := `UPDATE resources SET properties = CAST(replace(CAST(properties AS TEXT), $1, $2) AS BLOB),
		private = CAST(replace(CAST(private AS TEXT), $3, $4) AS BLOB) WHERE key = $5`
	if pg {
		edit = `UPDATE resources SET properties = convert_to(replace(convert_from(properties, 'UTF8'), $1, $2), 'UTF8'),
		private = convert_to(replace(convert_from(private, 'UTF8'), $3, $4), 'UTF8') WHERE key = $5`
	}
	res, err := db.Exec(edit,
		">"+name+"<", ">"+edited+"<", `\u003e`+name+`\u003c`, `\u003e`+edited+`\u003c`, w.Key)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("edit the store: %v (%d rows)", err, n)
	}
	db.Close()

	a = StartMgrServer(t, MgrServerOptions{Dir: dir, HostName: "manifest-a", Args: []string{"--listen", u.Host}})
	if got := WSProps(t, w, "name")["name"]; got != edited {
		t.Fatalf("the edit did not take: name %q", got)
	}
	r := a.CLI(t, "deploy", w.EPRFile, "--host", a.URL)
	WantFault(t, r, "ImageIntegrityFault", "manifest signature invalid", w.Key)
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "", "managerReference", "")
	if DomainDefined(w.Domain()) || a.HasWorkspaceDir(w.Key) {
		t.Fatalf("a deploy of an edited manifest defined a domain (%v) or made files (%v)", DomainDefined(w.Domain()), a.WorkspaceFiles(w.Key))
	}
	if e := a.ManagerEntries(); len(e) > 0 {
		t.Fatalf("the manager kept %v", e)
	}
}
