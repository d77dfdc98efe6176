package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// importFile streams a file into the pool as `vws image import` does.
func importFile(base, file, name string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	req, _ := http.NewRequest(http.MethodPut, base+"/images?name="+name+"&os=linux&arch=x86_64", f)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("import %s: HTTP %d: %s", name, resp.StatusCode, body)
	}
	return nil
}

func createBody(image, name string) *etree.Element {
	body := etree.NewElement("fac:Create")
	body.CreateAttr("xmlns:fac", vwsns.Factory)
	d := body.CreateElement("vw:virtualWorkspace")
	d.CreateAttr("xmlns:vw", vwsns.Workspace)
	d.CreateAttr("xmlns:hw", vwsns.Hardware)
	d.CreateAttr("xmlns:sw", vwsns.Software)
	d.CreateElement("vw:category").SetText("vm")
	hw := d.CreateElement("hw:hardware")
	hw.CreateElement("hw:RAM").CreateElement("hw:size").SetText("256")
	hw.CreateElement("hw:CPU").CreateElement("hw:count").SetText("1")
	d.CreateElement("sw:software").CreateElement("sw:image").CreateElement("sw:name").SetText(image)
	body.CreateElement("fac:Name").SetText(name)
	return body
}

func percentile(lat []time.Duration, p int) time.Duration {
	slices.Sort(lat)
	return lat[(len(lat)-1)*p/100]
}

// benchCreate times Factory Create over SOAP for a small and a large (sparse) base
// image: the copy-on-write overlay must make the cost independent of image size.
func benchCreate(ctx context.Context, base, dir string, n int) error {
	small := filepath.Join(dir, "small.raw")
	if err := os.WriteFile(small, bytes.Repeat([]byte{0x5a}, 10<<20), 0o644); err != nil {
		return err
	}
	large := filepath.Join(dir, "large.raw")
	f, err := os.Create(large)
	if err != nil {
		return err
	}
	if err := f.Truncate(4 << 30); err != nil { // sparse: 4 GiB of holes
		return err
	}
	f.Close()
	for name, file := range map[string]string{"bench-10mib": small, "bench-4gib": large} {
		if err := importFile(base, file, name); err != nil {
			return err
		}
	}
	os.Remove(large)
	c := client.New(nil)
	factory := &wsa.EPR{Version: wsa.V200508, Address: base + "/wsrf/services/" + vwsns.FactoryService}
	p50 := map[string]time.Duration{}
	fmt.Printf("Factory Create over SOAP (validate, authorize, pick image, RegisterWorkspace over SOAP, qcow2 overlay, commit), %d each:\n", n)
	for _, image := range []string{"bench-10mib", "bench-4gib"} {
		var lat []time.Duration
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if _, err := c.Invoke(ctx, factory, "Create", createBody(image, fmt.Sprintf("%s-%d", image, i))); err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
		}
		p50[image] = percentile(lat, 50)
		fmt.Printf("  %-12s p50 %6.2f ms  p99 %6.2f ms\n", image, ms(p50[image]), ms(percentile(lat, 99)))
	}
	fmt.Printf("  ratio 4 GiB / 10 MiB at p50: %.2f (target ≤ 1.5; p50 target ≤ 20 ms; VMware copies took 14–52 s)\n",
		float64(p50["bench-4gib"])/float64(p50["bench-10mib"]))
	return nil
}

// benchQuery fills the repository to 1,000 workspaces and times an XPath query across
// all of them on the Repository, and one on a single workspace.
func benchQuery(ctx context.Context, base string, total, n int) error {
	c := client.New(nil)
	factory := &wsa.EPR{Version: wsa.V200508, Address: base + "/wsrf/services/" + vwsns.FactoryService}
	repo := &wsa.EPR{Version: wsa.V200508, Address: base + "/wsrf/services/" + vwsns.RepositoryService}
	have := func() (int, error) {
		els, err := c.GetResourceProperty(ctx, repo, wsa.QName{Space: vwsns.Repository, Local: "WorkspaceCount"})
		if err != nil || len(els) != 1 {
			return 0, fmt.Errorf("WorkspaceCount: %v", err)
		}
		var k int
		fmt.Sscan(els[0].Text(), &k)
		return k, nil
	}
	k, err := have()
	if err != nil {
		return err
	}
	for i := k; i < total; i++ {
		if _, err := c.Invoke(ctx, factory, "Create", createBody("bench-10mib", fmt.Sprintf("q-%d", i))); err != nil {
			return err
		}
	}
	if k, err = have(); err != nil || k < total {
		return fmt.Errorf("have %d workspaces: %v", k, err)
	}
	ns := map[string]string{"repo": vwsns.Repository}
	expr := "count(/*/repo:Workspace[repo:State='shutdown' and starts-with(repo:Name,'q-')])"
	var lat []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		resp, err := c.QueryResourceProperties(ctx, repo, expr, ns)
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		if i == 0 {
			fmt.Printf("QueryResourceProperties on the Repository over %d workspaces: %s → %s\n", k, expr, resp.Text())
		}
	}
	fmt.Printf("  p50 %6.2f ms  p99 %6.2f ms (target p50 ≤ 50 ms)\n", ms(percentile(lat, 50)), ms(percentile(lat, 99)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
