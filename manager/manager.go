// Package manager is the VW Manager that runs on every host: it deploys workspaces
// and drives them through the hypervisor. This release describes the host; the
// lifecycle operations arrive with the manager issue.
package manager

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

var mq = func(l string) wsa.QName { return vwsns.Q(vwsns.Manager, l) }

// The Manager's host properties.
var (
	PropVMMType            = mq("VMMType")
	PropVMMVersion         = mq("VMMVersion")
	PropDomainType         = mq("DomainType")
	PropCPUs               = mq("CPUs")
	PropMemoryTotal        = mq("MemoryTotal")
	PropMemoryFree         = mq("MemoryFree")
	PropDeployedWorkspaces = mq("DeployedWorkspaces")
	PropCachedImages       = mq("CachedImages")
)

// NewService builds the WorkspaceManagerService.
func NewService(contract fs.FS) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.ManagerService, wsa.QName{})
	if err != nil {
		return nil, err
	}
	props := &wsrf.Singleton{
		DocName: mq("WorkspaceManagerResourceProperties"),
		Declared: []wsa.QName{PropVMMType, PropVMMVersion, PropDomainType, PropCPUs, PropMemoryTotal,
			PropMemoryFree, PropDeployedWorkspaces, PropCachedImages},
		Build: hostProperties,
	}
	wsrf.HandleProperties(svc, props)
	for _, op := range []string{"Deploy", "Start", "Pause", "Unpause", "Shutdown", "Undeploy", "Console"} {
		svc.Handle(op, container.NotImplemented(op))
	}
	return svc, nil
}

func hostProperties(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error) {
	total, free, err := meminfo()
	if err != nil {
		return nil, fmt.Errorf("read host memory: %w", err)
	}
	return []*etree.Element{
		wsrf.TextProperty(PropCPUs, strconv.Itoa(runtime.NumCPU())),
		wsrf.TextProperty(PropMemoryTotal, strconv.FormatInt(total, 10)),
		wsrf.TextProperty(PropMemoryFree, strconv.FormatInt(free, 10)),
	}, nil
}

// meminfo returns total and available memory in MiB.
func meminfo() (total, free int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = kb / 1024
		case "MemAvailable:":
			free = kb / 1024
		}
	}
	return total, free, sc.Err()
}
