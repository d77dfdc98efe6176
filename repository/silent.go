package repository

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/beevik/etree"

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
	seen     uint64     // the directory's silentChanges last acted on
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
// itself vw:hostSilentSince (when the host was last heard from), and takes it from
// those whose host is back: the workspace's EPR then says its state is only the last
// report. The workspaces are looked through only when the set of silent hosts changed.
func (r *Repository) markSilentHosts(ctx context.Context) {
	r.watch.mu.Lock()
	defer r.watch.mu.Unlock()
	silent, changes := r.hosts.Silent(r.now())
	if changes == r.watch.seen {
		return
	}
	r.watch.seen = changes
	type change struct {
		key   string
		since time.Time // zero: unmark
	}
	var todo []change
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		since, isSilent := silent[text(s, PropHost)]
		isSilent = isSilent && text(s, PropDeployment) != "in-repository"
		marked := s.Property(PropHostSilentSince) != nil
		switch {
		case isSilent && !marked:
			todo = append(todo, change{s.Key, since})
		case !isSilent && marked:
			todo = append(todo, change{key: s.Key})
		}
		return true
	})
	for _, c := range todo {
		err := r.Workspaces.Modify(ctx, c.key, func(s *wsrf.Snapshot) error {
			if c.since.IsZero() {
				removeProp(s, PropHostSilentSince)
			} else if text(s, PropDeployment) != "in-repository" {
				setText(s, PropHostSilentSince, wsrf.FormatTime(c.since))
			}
			return nil
		})
		if err != nil {
			r.log.Warn("could not mark a workspace whose host went silent, or came back", "workspace", c.key, "err", err)
			r.watch.seen = 0 // try again next round
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
