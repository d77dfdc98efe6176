package repository

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// hostWatchEvery is how often the Repository looks for hosts that went silent (their
// announcement expired) or came back, to mark or unmark the workspaces deployed there.
const hostWatchEvery = 2 * time.Second

// hostWatch runs markSilentHosts until Close.
type hostWatch struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	mu       sync.Mutex // one round at a time
}

func (r *Repository) watchHosts() {
	r.watch.stop = make(chan struct{})
	r.watch.done.Add(1)
	go func() {
		defer r.watch.done.Done()
		t := time.NewTicker(hostWatchEvery)
		defer t.Stop()
		for {
			select {
			case <-r.watch.stop:
				return
			case <-t.C:
				r.markSilentHosts(context.Background())
			}
		}
	}()
}

func (r *Repository) stopWatchingHosts() {
	if r.watch.stop != nil {
		r.watch.stopOnce.Do(func() { close(r.watch.stop) })
		r.watch.done.Wait()
	}
}

// markSilentHosts gives each workspace deployed on a host that stopped announcing
// itself vw:hostSilentSince (when the host was last heard from), keeps that time
// current, and takes the mark from those whose host is back or that left it: the
// workspace's EPR then says its state is only the last report. Every round looks at
// every workspace — a comparison in memory each — so that nothing a restart, a
// check-out to a silent host or a missed round left behind stays wrong.
func (r *Repository) markSilentHosts(ctx context.Context) {
	r.watch.mu.Lock()
	defer r.watch.mu.Unlock()
	now := r.now()
	silent, _ := r.hosts.Silent(now)
	announcedBy := map[string]string{}
	for _, h := range r.hosts.Live(now) {
		announcedBy[h.Name] = h.AnnouncedBy
	}
	mark := func(s *wsrf.Snapshot) string {
		if text(s, PropDeployment) == "in-repository" {
			return ""
		}
		since, ok := silent[text(s, PropHost)]
		if !ok {
			// The name announced again, but by another identity than the one holding
			// the workspace (as stillSilent sees it): that one is still not heard
			// from, and the mark it has stays.
			if holder := text(s, PropLockHolder); strings.HasPrefix(holder, "/") {
				if by := announcedBy[text(s, PropHost)]; by != "" && by != holder {
					return text(s, PropHostSilentSince)
				}
			}
			return ""
		}
		return wsrf.FormatTime(since)
	}
	var todo []string
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if text(s, PropHostSilentSince) != mark(s) {
			todo = append(todo, s.Key)
		}
		return true
	})
	for _, key := range todo {
		// Decided again under the workspace's lock: it may have moved since.
		err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
			if m := mark(s); m == "" {
				removeProp(s, PropHostSilentSince)
			} else {
				setText(s, PropHostSilentSince, m)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errdefs.ErrResourceUnknown) {
			r.log.Warn("could not mark a workspace whose host went silent, or came back", "workspace", key, "err", err)
		}
	}
	if len(todo) > 0 {
		r.log.Info("workspaces on silent hosts", "marked_or_unmarked", len(todo), "silent_hosts", len(silent))
	}
}

// listSilentFor is how long a silent host with none of the caller's workspaces is
// still listed: a host taken out of service for good drops out of vws host list.
const listSilentFor = 7 * 24 * time.Hour

// silentHostElements are the repo:SilentHost properties, by name, each counting the
// workspaces of visible deployed there.
func (r *Repository) silentHostElements(visible []Summary) []*etree.Element {
	now := r.now()
	silent, _ := r.hosts.Silent(now)
	names := slices.Sorted(maps.Keys(silent))
	out := make([]*etree.Element, 0, len(names))
	for _, name := range names {
		n := 0
		for _, w := range visible {
			if w.Host == name && w.Deployment != "in-repository" {
				n++
			}
		}
		if n == 0 && now.Sub(silent[name]) > listSilentFor {
			continue
		}
		el := etree.NewElement("r:SilentHost")
		el.CreateAttr("xmlns:r", vwsns.Repository)
		el.CreateElement("r:HostName").SetText(name)
		el.CreateElement("r:LastSeen").SetText(wsrf.FormatTime(silent[name]))
		el.CreateElement("r:DeployedWorkspaces").SetText(strconv.Itoa(n))
		out = append(out, el)
	}
	return out
}
