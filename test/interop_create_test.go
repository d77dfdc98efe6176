package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/test/harness"
)

// createReport is what test/interop/zeep_create.py prints.
type createReport struct {
	Dialect         string   `json:"dialect"`
	FactoryAddress  string   `json:"factoryAddress"`
	Address         string   `json:"address"`
	Key             string   `json:"key"`
	EPRNamespace    string   `json:"eprNamespace"`
	CurrentTime     string   `json:"currentTime"`
	TerminationTime string   `json:"terminationTime"`
	LifetimeClamped bool     `json:"lifetimeClamped"`
	Name            []string `json:"name"`
	State           []string `json:"state"`
	Hardware        struct {
		RAM  int `json:"ram"`
		CPUs int `json:"cpus"`
	} `json:"hardware"`
	Place struct {
		Candidates  []string `json:"candidates"`
		CachedBytes []int64  `json:"cachedBytes"`
		Unsuitable  []string `json:"unsuitable"`
	} `json:"place"`
}

// TestInteropCreateZeep: zeep creates a workspace from a description file through the
// Factory's live WSDL and reads it back through the WorkspaceService's; the GT-style
// `vws wsrf` verbs then query and destroy the same workspace, and its files go with it.
func TestInteropCreateZeep(t *testing.T) {
	if out, err := exec.Command(zeepPython, "-c", "import zeep; print(zeep.__version__)").CombinedOutput(); err != nil {
		t.Skipf("zeep interop test needs python3-zeep for %s (apt-get install python3-zeep): %v\n%s", zeepPython, err, out)
	}
	s := harness.Start(t)
	// schema/samples/minimal-vm.xml boots the pool image debian-12-base. A raw file
	// need not be a whole number of sectors: this one is 1,000,000 bytes.
	importImage(t, s, rawBase(t, 1_000_000, 0x42), "name=debian-12-base&os=linux/debian/12&arch=x86_64")
	description, err := filepath.Abs("../schema/samples/minimal-vm.xml")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"VWS_URL=" + s.URL}
	keyName := "{" + vwsns.Workspace + "}WorkspaceKey"
	host := elText(waitKnownHost(t, client.New(nil), &wsa.EPR{Version: wsa.V200508, Address: s.ServiceURL(vwsns.RepositoryService)}, ""), "HostName")

	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			name := "zeep-made-" + d.Name
			wsdl := s.ServiceURL(vwsns.FactoryService) + "?wsdl"
			if d == dialect.GT4 {
				wsdl += "&dialect=gt4"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, zeepPython, "interop/zeep_create.py",
				"--factory-wsdl", wsdl, "--dialect", d.Name, "--description", description,
				"--name", name, "--lifetime", "PT2H")
			cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("zeep_create.py (%s): %v\n%s%s", d.Name, err, stderr.String(), stdout.String())
			}
			var r createReport
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("zeep_create.py output is not a JSON report: %v\n%s", err, stdout.String())
			}

			// What zeep read back is what the description file asked for.
			if r.Dialect != d.Name || r.EPRNamespace != d.WSA.Namespace() {
				t.Errorf("report dialect %q with an EPR in %q; want %s with %s", r.Dialect, r.EPRNamespace, d.Name, d.WSA.Namespace())
			}
			if r.FactoryAddress != s.ServiceURL(vwsns.FactoryService) || r.Address != s.ServiceURL(vwsns.WorkspaceService) {
				t.Errorf("addresses: factory %q, workspace %q", r.FactoryAddress, r.Address)
			}
			if r.Key == "" {
				t.Fatal("no WorkspaceKey in the WorkspaceReference")
			}
			if len(r.Name) != 1 || r.Name[0] != name {
				t.Errorf("vw:name = %q, want [%s]", r.Name, name)
			}
			if len(r.State) != 1 || r.State[0] != "shutdown" {
				t.Errorf("vw:state = %q, want [shutdown]", r.State)
			}
			if r.Hardware.RAM != 256 || r.Hardware.CPUs != 1 {
				t.Errorf("hw:hardware: RAM %d MiB, %d CPUs; the description says 256 and 1", r.Hardware.RAM, r.Hardware.CPUs)
			}
			// The server's own manager announced its host; nothing of the image is cached there yet.
			if !slices.Equal(r.Place.Candidates, []string{host}) || !slices.Equal(r.Place.CachedBytes, []int64{0}) || len(r.Place.Unsuitable) != 0 {
				t.Errorf("Place: candidates %v (cached %v), unsuitable %v; want [%s] with 0 bytes cached", r.Place.Candidates, r.Place.CachedBytes, r.Place.Unsuitable, host)
			}
			cur, err1 := wsrf.ParseDateTime(r.CurrentTime)
			term, err2 := wsrf.ParseDateTime(r.TerminationTime)
			if err1 != nil || err2 != nil || term.Sub(cur) != 2*time.Hour || r.LifetimeClamped {
				t.Errorf("CreateResponse times %q → %q (clamped %v): want the 2 h asked for", r.CurrentTime, r.TerminationTime, r.LifetimeClamped)
			}
			overlay := filepath.Join(s.DataDir, "workspaces", r.Key, "disk-1.qcow2")
			if _, err := os.Stat(overlay); err != nil {
				t.Fatalf("the new workspace's overlay: %v", err)
			}

			// The GT-style verbs on the same workspace, by its key.
			k := []string{"--dialect", d.Name, "-k", keyName, r.Key}
			got := runVWS(t, env, append(append([]string{"wsrf", "get-property"}, k...), "vw:name")...)
			if got.code != 0 || !strings.Contains(got.stdout, ">"+name+"</") {
				t.Fatalf("vws wsrf get-property vw:name: %+v", got)
			}
			got = runVWS(t, env, append(append([]string{"wsrf", "get-properties"}, k...), "vw:state", "vw:deployment")...)
			if got.code != 0 || !strings.Contains(got.stdout, ">shutdown</") || !strings.Contains(got.stdout, ">in-repository</") {
				t.Fatalf("vws wsrf get-properties vw:state vw:deployment: %+v", got)
			}
			got = runVWS(t, env, append(append([]string{"wsrf", "query"}, k...), "string(/*/hw:hardware/hw:RAM/hw:size)")...)
			if got.code != 0 || strings.TrimSpace(got.stdout) != "256" {
				t.Fatalf("vws wsrf query RAM size: %+v", got)
			}
			got = runVWS(t, env, append(append([]string{"wsrf", "query"}, k...), "string(/*/sw:software/sw:image/sw:name)")...)
			if got.code != 0 || strings.TrimSpace(got.stdout) != "debian-12-base" {
				t.Fatalf("vws wsrf query image name: %+v", got)
			}
			got = runVWS(t, env, append([]string{"wsrf", "destroy"}, k...)...)
			if got.code != 0 {
				t.Fatalf("vws wsrf destroy: %+v", got)
			}
			got = runVWS(t, env, append(append([]string{"wsrf", "get-property"}, k...), "vw:state")...)
			if got.code != 2 || !strings.Contains(got.stderr, "ResourceUnknownFault") {
				t.Fatalf("get-property after destroy: %+v", got)
			}
			if _, err := os.Stat(filepath.Dir(overlay)); !os.IsNotExist(err) {
				t.Errorf("the destroyed workspace's directory %s remains (%v)", filepath.Dir(overlay), err)
			}
		})
	}
	waitEmpty(t, filepath.Join(s.DataDir, "workspaces"))
}
