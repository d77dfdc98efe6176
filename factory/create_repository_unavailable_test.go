package factory

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
)

// TestCreateTellsAnUnavailableRepository: a Create whose Repository does not answer,
// or answers with its own failure (a Server ServiceFault naming an incident there), is
// told so: a ServiceFault saying the repository could not list its images and to
// retry, with the Repository's incident id and no incident of the Factory's, whose id
// the Factory's administrator would look up in vain.
func TestCreateTellsAnUnavailableRepository(t *testing.T) {
	repoDetail := container.FaultDetail(errors.New("query images: database is locked"), dialect.WSRF12)
	repoDesc := repoDetail.SelectElement("Description").Text()
	ids := regexp.MustCompile(`incident ([0-9a-f]+)`)
	repoID := ids.FindStringSubmatch(repoDesc)[1]
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, _ := (&soap.Message{Body: (&soap.Fault{Code: soap.CodeServer, String: repoDesc, Detail: []*etree.Element{repoDetail}}).Element()}).Bytes()
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(b)
	}))
	defer failing.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there any more

	v, err := describe.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	cfg.Defaults()
	for _, c := range []struct {
		what, url, incident string
	}{{"unreachable", gone.URL, ""}, {"failing", failing.URL, repoID}} {
		reg := &SOAPRegistry{Client: client.New(&http.Client{Timeout: 5 * time.Second}), URL: func() string { return c.url }}
		h := create(cfg, &Deps{Validator: v, Registry: reg, Now: time.Now})
		_, err := h(context.Background(), createRequest(t, ""))
		if err == nil {
			t.Fatalf("%s: Create succeeded without a Repository", c.what)
		}
		desc := container.FaultDetail(err, dialect.WSRF12).SelectElement("Description").Text()
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(desc, "repository") || !strings.Contains(desc, "retry") {
			t.Errorf("%s Repository: Create answered %q; want the repository named as unavailable, and to retry", c.what, desc)
		}
		var found []string
		for _, m := range ids.FindAllStringSubmatch(desc, -1) {
			found = append(found, m[1])
		}
		if (c.incident == "" && len(found) > 0) || (c.incident != "" && (len(found) == 0 || slices.ContainsFunc(found, func(id string) bool { return id != c.incident }))) {
			t.Errorf("%s Repository: Create answered %q, naming incidents %v; want only the Repository's (%q)", c.what, desc, found, c.incident)
		}
	}
}
