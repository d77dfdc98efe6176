package manager

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// Reports to the Repository leave the operation's critical path: an operation
// journals its new state and returns; a single reporter sends each workspace's
// current state (read from the journal when sending, so bursts coalesce and order is
// kept) some milliseconds later. A report that fails is sent again by the reconciler, which
// compares the journal with what was last reported.

// reportDelay lets a burst of changes to one workspace (pause, unpause, pause) go to
// the Repository as one report of where it ended.
const reportDelay = 10 * time.Millisecond

// report has the Repository told the workspace's current state, shortly.
func (m *Manager) report(rec *record) {
	key := rec.Key
	if _, queued := m.queued.LoadOrStore(key, true); queued {
		return
	}
	time.AfterFunc(reportDelay, func() {
		select {
		case m.reportq <- key:
		case <-m.stop:
		default:
			m.queued.Delete(key) // full: the reconciler's next round sends it
		}
	})
}

// reportPending has every workspace whose current state its Repository has not heard
// reported (a report that failed, or none yet).
func (m *Manager) reportPending() {
	recs, _ := m.journal.all() // one it cannot read, the reconciler's rounds see to
	for _, r := range recs {
		if r.Token != "" && r.State != "" && m.reportedState(r.Key) != r.reportKey() {
			m.report(r)
		}
	}
}

// reportedState is what the Repository was last told of a workspace ("" unknown).
func (m *Manager) reportedState(key string) string {
	if v, ok := m.reported.Load(key); ok {
		return v.(string)
	}
	return ""
}

// reporter hands each queued workspace to its Repository's sender: one per
// Repository, so that one that accepts connections and never answers holds back its
// own reports only, not those of the others a host deploys for. A workspace always
// goes to the same sender, which sends one report at a time: an older state never
// overtakes a newer one.
func (m *Manager) reporter() {
	defer m.wg.Done()
	senders := map[string]chan string{}
	for {
		select {
		case <-m.stop:
			return
		case key := <-m.reportq:
			rec, err := m.journal.get(key)
			if err != nil {
				m.queued.Delete(key)
				if errors.Is(err, os.ErrNotExist) {
					m.reported.Delete(key) // undeployed meanwhile: CheckIn said it all
				}
				continue
			}
			repository := repositoryBase(rec.WorkspaceAddress)
			q, ok := senders[repository]
			if !ok {
				q = make(chan string, cap(m.reportq))
				senders[repository] = q
				m.wg.Add(1)
				go m.reportSender(q)
			}
			select {
			case q <- key: // still queued (coalescing) until its sender takes it
			default:
				m.queued.Delete(key) // full: the reconciler's next round sends it
			}
		}
	}
}

// reportSender sends the reports of one Repository's workspaces, one at a time.
func (m *Manager) reportSender(q <-chan string) {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case key := <-q:
			m.queued.Delete(key)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			m.sendReport(ctx, key)
			cancel()
		}
	}
}

func (m *Manager) sendReport(ctx context.Context, key string) {
	rec, err := m.journal.get(key)
	if errors.Is(err, os.ErrNotExist) {
		m.reported.Delete(key) // undeployed meanwhile: CheckIn said it all
		return
	}
	if err != nil || rec.Token == "" || rec.State == "" {
		return
	}
	want := rec.reportKey()
	if m.reportedState(key) == want {
		return
	}
	if err := m.repo.reportState(ctx, rec, m.checkedOutAs(rec), rec.State, rec.Phase, rec.Detail); err != nil {
		level := m.log.Warn
		if errors.Is(err, errdefs.ErrLocked) || errors.Is(err, errdefs.ErrResourceUnknown) {
			level = m.log.Debug // checked in or destroyed meanwhile
		}
		level("report state to the repository; will retry", "workspace", key, "state", want, "err", err)
		return
	}
	m.reported.Store(key, want)
}

// reportKey is what a report tells the Repository: state, deployment phase and the
// detail, of which deployment. The detail is part of it: "paused" is both a guest
// paused in RAM and a serialized one, and only vw:stateDetail tells them apart. The
// deployment (its check-out) is too: a report of an earlier deployment here whose
// answer comes back after the workspace was undeployed and deployed again is
// remembered after the new Deploy forgot it, and must not pass for the new one's.
func (r *record) reportKey() string {
	return r.State + "/" + r.Phase + "/" + r.Detail + " of check-out " + r.CheckOutID
}
