// Package factory is the VW Factory: it creates workspaces under site policy and
// describes what it offers through its own resource properties.
package factory

import (
	"context"
	"io/fs"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// Config is what the Factory offers.
type Config struct {
	// VMMTypes the site's managers run (kvm, qemu, xen), and Architectures of its
	// hosts (default the machine's own): what the Factory says it offers while no
	// host has announced itself to the Repository (Deps.Hosts), a guess until then.
	VMMTypes      []string
	Architectures []string
	// DefaultLifetime applies when a Create asks for none.
	DefaultLifetime time.Duration
	// MaximumLifetime bounds any workspace's lifetime.
	MaximumLifetime time.Duration
	// RefuseLongLifetimes faults a request beyond MaximumLifetime; by default it is
	// clamped to the maximum and the response says so.
	RefuseLongLifetimes bool
	// Version is the software version reported.
	Version string
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if len(c.VMMTypes) == 0 {
		c.VMMTypes = []string{"kvm", "qemu"}
	}
	if len(c.Architectures) == 0 {
		c.Architectures = []string{GoArchToVMArch(runtime.GOARCH)}
	}
	if c.DefaultLifetime == 0 {
		c.DefaultLifetime = 24 * time.Hour
	}
	if c.MaximumLifetime == 0 {
		c.MaximumLifetime = 30 * 24 * time.Hour
	}
}

// GoArchToVMArch maps a Go architecture name to the one libvirt and descriptions use.
func GoArchToVMArch(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	}
	return a
}

var q = func(local string) wsa.QName { return vwsns.Q(vwsns.Factory, local) }

// The Factory's resource properties.
var (
	PropVMMTypes        = q("VMMTypes")
	PropArchitectures   = q("Architectures")
	PropDefaultLifetime = q("DefaultLifetime")
	PropMaximumLifetime = q("MaximumLifetime")
	PropImagePool       = q("ImagePool")
	PropVersion         = q("Version")
)

// NewService builds the WorkspaceFactoryService.
func NewService(contract fs.FS, cfg Config, deps *Deps) (*container.Service, error) {
	cfg.Defaults()
	svc, err := container.NewService(contract, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		return nil, err
	}
	offered := &siteOffer{hosts: deps.Hosts, log: deps.Log}
	props := &wsrf.Singleton{
		DocName:  q("WorkspaceFactoryResourceProperties"),
		Declared: []wsa.QName{PropVMMTypes, PropArchitectures, PropDefaultLifetime, PropMaximumLifetime, PropImagePool, PropVersion},
		Build: func(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error) {
			var out []*etree.Element
			vmms, archs := offered.now(ctx, cfg)
			for _, v := range vmms {
				out = append(out, wsrf.TextProperty(PropVMMTypes, v))
			}
			for _, a := range archs {
				out = append(out, wsrf.TextProperty(PropArchitectures, a))
			}
			out = append(out,
				wsrf.TextProperty(PropDefaultLifetime, wsrf.FormatDuration(cfg.DefaultLifetime)),
				wsrf.TextProperty(PropMaximumLifetime, wsrf.FormatDuration(cfg.MaximumLifetime)),
				wsrf.TextProperty(PropVersion, cfg.Version))
			return out, nil
		},
		// The pool is a call to the Repository: only for those who ask for it.
		Costly: map[wsa.QName]func(context.Context, *dialect.Dialect) ([]*etree.Element, error){
			PropImagePool: func(ctx context.Context, _ *dialect.Dialect) ([]*etree.Element, error) {
				images, err := deps.Registry.ListImages(ctx)
				if err != nil {
					return nil, err
				}
				return []*etree.Element{imagePool(images)}, nil
			},
		},
		CostlyOrder: []wsa.QName{PropImagePool}, CostlyBefore: PropVersion,
	}
	wsrf.HandleProperties(svc, props)
	svc.Handle("Create", create(cfg, deps))
	return svc, nil
}

// imagePool summarizes the pool the Factory creates workspaces from.
func imagePool(images []imagepool.Image) *etree.Element {
	pool := etree.NewElement("fac:ImagePool")
	pool.CreateAttr("xmlns:fac", vwsns.Factory)
	var total int64
	for _, img := range images {
		total += img.Size
	}
	pool.CreateElement("fac:ImageCount").SetText(strconv.Itoa(len(images)))
	pool.CreateElement("fac:TotalBytes").SetText(strconv.FormatInt(total, 10))
	for _, img := range images {
		e := pool.CreateElement("fac:Image")
		e.CreateElement("fac:Name").SetText(img.Name)
		e.CreateElement("fac:Digest").SetText(img.Digest)
		e.CreateElement("fac:SizeBytes").SetText(strconv.FormatInt(img.Size, 10))
		if family, _, _ := strings.Cut(img.OS, "/"); family != "" {
			e.CreateElement("fac:OSFamily").SetText(family)
		}
		if img.Arch != "" {
			e.CreateElement("fac:Architecture").SetText(img.Arch)
		}
	}
	return pool
}
