package wsrf_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

var (
	docName = wsa.QName{Space: "urn:t", Local: "Doc"}
	propA   = wsa.QName{Space: "urn:t", Local: "a"}
	propB   = wsa.QName{Space: "urn:t", Local: "b"}
)

func prop(q wsa.QName, text string) *etree.Element {
	e := etree.NewElement("t:" + q.Local)
	e.CreateAttr("xmlns:t", q.Space)
	e.SetText(text)
	return e
}

// newHome starts a home on db; a second one on the same db is the home after a
// restart: it has only what the store kept.
func newHome(t *testing.T, db *store.DB, destroyed chan<- string) *wsrf.Home {
	t.Helper()
	h, err := wsrf.NewHome(context.Background(), wsrf.HomeConfig{
		Service: "test", Document: docName, Declared: []wsa.QName{propA, propB}, Store: db,
		Writable: func(s *wsrf.Snapshot, q wsa.QName) error {
			if q != propB {
				return errdefs.ErrUnableToModify
			}
			return nil
		},
		OnDestroy: func(ctx context.Context, s *wsrf.Snapshot) error {
			if destroyed != nil {
				destroyed <- s.Key
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestHomePersistsAcrossRestart(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	h := newHome(t, db, nil)
	term := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := h.Create(ctx, "k1", []*etree.Element{prop(propA, "1")}, &term); err != nil {
		t.Fatal(err)
	}
	if err := h.SetProperties(ctx, "k1", []wsrf.Modification{{Kind: wsrf.Insert, Property: propB, Values: []*etree.Element{prop(propB, "2")}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.SetProperties(ctx, "k1", []wsrf.Modification{{Kind: wsrf.Update, Property: propA, Values: []*etree.Element{prop(propA, "x")}}}); !errors.Is(err, errdefs.ErrUnableToModify) {
		t.Fatalf("read-only property changed: %v", err)
	}
	h.Close()

	h2 := newHome(t, db, nil)
	doc, err := h2.Document(ctx, dialect.WSRF12, "k1")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := etree.NewDocumentWithRoot(doc).WriteToString()
	for _, want := range []string{">1</t:a>", ">2</t:b>", wsrf.FormatTime(term)} {
		if !contains(s, want) {
			t.Errorf("document after restart lacks %q:\n%s", want, s)
		}
	}
}

func TestHomeExpiresWithinOneSecondAndAfterRestart(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	destroyed := make(chan string, 4)
	h := newHome(t, db, destroyed)
	soon := time.Now().Add(300 * time.Millisecond)
	if err := h.Create(ctx, "soon", nil, &soon); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(1500 * time.Millisecond)
	if err := h.Create(ctx, "later", nil, &later); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-destroyed:
		if k != "soon" {
			t.Fatalf("destroyed %s first", k)
		}
		if late := time.Since(soon); late > time.Second {
			t.Fatalf("destroyed %v after its termination time", late)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("not destroyed")
	}
	if _, err := h.Document(ctx, dialect.GT4, "soon"); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatalf("expired resource still answers: %v", err)
	}
	// "later" must survive a restart that happens before its time and still expire.
	h.Close()
	h2 := newHome(t, db, destroyed)
	select {
	case k := <-destroyed:
		if k != "later" {
			t.Fatalf("destroyed %s", k)
		}
		if late := time.Since(later); late > time.Second {
			t.Fatalf("destroyed %v after its termination time", late)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("schedule lost across restart")
	}
	// OnDestroy runs before the resource is forgotten; give the removal a moment.
	deadline := time.Now().Add(time.Second)
	for len(h2.Keys()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h2.Keys(); len(got) != 0 {
		t.Fatalf("left: %v", got)
	}
}

func TestSetTerminationTime(t *testing.T) {
	ctx := context.Background()
	destroyed := make(chan string, 1)
	h := newHome(t, storetest.Open(t), destroyed)
	if err := h.Create(ctx, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if _, err := h.SetTerminationTime(ctx, "k", &past); !errors.Is(err, errdefs.ErrUnableToSetTermTime) {
		t.Fatalf("past time: %v", err)
	}
	soon := time.Now().Add(200 * time.Millisecond)
	if _, err := h.SetTerminationTime(ctx, "k", &soon); err != nil {
		t.Fatal(err)
	}
	// Back to "never" before it fires: it must not be destroyed.
	if got, err := h.SetTerminationTime(ctx, "k", nil); err != nil || got != nil {
		t.Fatalf("never: %v %v", got, err)
	}
	select {
	case <-destroyed:
		t.Fatal("destroyed although termination was cancelled")
	case <-time.After(600 * time.Millisecond):
	}
	if _, err := h.SetTerminationTime(ctx, "nope", nil); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatalf("unknown key: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
