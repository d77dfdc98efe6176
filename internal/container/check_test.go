package container_test

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// The container must refuse to start when the WSDL declares an operation that has no
// handler: the WSDL is the contract.
func TestRefusesOperationWithoutHandler(t *testing.T) {
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Handle("GetResourceProperty", container.NotImplemented("x"))
	_, err = container.New(container.Config{}, svc)
	if err == nil || !strings.Contains(err.Error(), "without a handler") || !strings.Contains(err.Error(), "Create") {
		t.Fatalf("err = %v", err)
	}
}

func TestRefusesHandlerWithoutOperation(t *testing.T) {
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			svc.Handle(op.Name, container.NotImplemented(op.Name))
		}
	}
	svc.Handle("NoSuchOperation", container.NotImplemented("x"))
	if _, err := container.New(container.Config{}, svc); err == nil || !strings.Contains(err.Error(), "NoSuchOperation") {
		t.Fatalf("err = %v", err)
	}
}
