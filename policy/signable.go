package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
)

// servedOperations is every operation of every service vws serves, by service, as the
// WSDLs of both dialects declare them: a require-signature line naming anything else
// would be a rule that never matches, requiring nothing while the site believes it
// does, so it is refused like an undefined group.
var servedOperations = sync.OnceValues(func() (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, svc := range []string{vwsns.FactoryService, vwsns.WorkspaceService, vwsns.RepositoryService, vwsns.ManagerService, vwsns.SubscriptionManagerService} {
		ops := map[string]bool{}
		for _, d := range dialect.Dialects {
			c, err := contract.Load(contract.FS, "wsdl/"+d.WSDLDir+"/"+svc+".wsdl")
			if err != nil {
				return nil, fmt.Errorf("the operations of %s: %w", svc, err)
			}
			for _, op := range c.Operations {
				ops[op.Name] = true
			}
		}
		out[svc] = ops
	}
	return out, nil
})

// checkSignable refuses a require-signature service or operation vws does not serve.
func checkSignable(service, operation string) error {
	served, err := servedOperations()
	if err != nil {
		return err
	}
	var services []string
	if service == "*" {
		services = slices.Sorted(maps.Keys(served))
	} else if served[service] == nil {
		return fmt.Errorf("service %q: vws serves %s (or *)", service, strings.Join(slices.Sorted(maps.Keys(served)), ", "))
	} else {
		services = []string{service}
	}
	if operation == "*" {
		return nil
	}
	for _, s := range services {
		if served[s][operation] {
			return nil
		}
	}
	return fmt.Errorf("operation %q is not one of %s (operation names are as the WSDL spells them, e.g. Create, Deploy, Destroy)", operation, strings.Join(services, ", "))
}
