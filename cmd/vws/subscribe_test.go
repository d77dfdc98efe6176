package main

import (
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/vwsns"
)

func stateChange(old, cur string) notify.Notification {
	el := func(v string) *etree.Element {
		e := etree.NewElement("vw:state")
		e.CreateAttr("xmlns:vw", vwsns.Workspace)
		e.SetText(v)
		return e
	}
	return notify.Notification{Dialect: dialect.WSRF12, Topic: vwsns.Q(vwsns.Workspace, "state"),
		Old: []*etree.Element{el(old)}, New: []*etree.Element{el(cur)}}
}

// A change that arrives just after the workspace's end (another subscription's queue)
// is printed before the end, which is the last line; nothing comes after it.
func TestListenPrinterPrintsTheEndLast(t *testing.T) {
	var out strings.Builder
	p := newListenPrinter(&out, false, 0, 100*time.Millisecond)
	p.deliver(stateChange("shutdown", "running"))
	p.deliver(notify.Notification{Dialect: dialect.WSRF12, Terminated: true, Reason: "destroyed at a client's request"})
	p.deliver(stateChange("running", "shutdown")) // within the grace
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("not done after the end")
	}
	p.deliver(stateChange("shutdown", "running")) // after it: dropped
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "state: shutdown -> running") ||
		!strings.HasSuffix(lines[1], "state: running -> shutdown") || !strings.HasSuffix(lines[2], "ended: destroyed at a client's request") {
		t.Fatalf("printed:\n%s", out.String())
	}
}

// --count ends it, also when the end came first and stragglers reach the count.
func TestListenPrinterCount(t *testing.T) {
	var out strings.Builder
	p := newListenPrinter(&out, false, 2, 100*time.Millisecond)
	p.deliver(stateChange("shutdown", "running"))
	p.deliver(notify.Notification{Dialect: dialect.WSRF12, Terminated: true, Reason: "gone"})
	p.deliver(stateChange("running", "paused"))
	select {
	case <-p.done:
	case <-time.After(time.Second):
		t.Fatal("not done after two changes")
	}
	time.Sleep(200 * time.Millisecond) // the end's timer fires: it must not print, nor panic
	if n := strings.Count(out.String(), "\n"); n != 2 || strings.Contains(out.String(), "ended") {
		t.Fatalf("printed:\n%s", out.String())
	}
}
