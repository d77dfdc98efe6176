package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
)

// TestUndeployOfAReclaimedWorkspaceSaysNothingWentBack: a workspace the Repository
// reclaimed while this host was silent, undeployed before the reconciler's first
// round, is cleaned up here — but the answer is a state fault saying nothing was
// handed back, not a success as if the guest's changes had gone back.
func TestUndeployOfAReclaimedWorkspaceSaysNothingWentBack(t *testing.T) {
	const k = "ws-reclaimed"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "in-repository", host: ""}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs, rec.OverlayDigest = "tok", "h", "sha256:checkedout"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	res, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "nothing was handed back") || repo.seen("PUT") {
		t.Fatalf("Undeploy of a reclaimed workspace: %+v, %v (repository saw %v); want a state fault saying nothing was handed back", res, err, repo.calls)
	}
	if _, statErr := os.Stat(m.workspaceDir(k)); !os.IsNotExist(statErr) {
		t.Errorf("the reclaimed workspace's local copy is still there: %v", statErr)
	}
	if r, _ := m.journal.get(k); r != nil {
		t.Errorf("the reclaimed workspace's record is still journaled: %+v", r)
	}
}

// TestUndeployWithRepositoryDownSaysTheManagerCarriesOn: an Undeploy whose Repository
// refuses connections has journaled the hand-back and stopped the domain; its error
// says the manager finishes it by itself, not "nothing was changed; retry" (a retried
// Undeploy is refused while it is unstaging).
func TestUndeployWithRepositoryDownSaysTheManagerCarriesOn(t *testing.T) {
	const k = "ws-repo-down"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	// crashManager's record addresses http://127.0.0.1:1/: connection refused.
	m.repo = &repoClient{soap: client.New(http.DefaultClient), http: http.DefaultClient}
	_, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	if err == nil {
		t.Fatal("Undeploy with the Repository down succeeded")
	}
	r, _ := m.journal.get(k)
	if r == nil || r.Phase != phaseUnstaging {
		t.Fatalf("after an Undeploy cut off from its Repository the record is %+v; want it unstaging", r)
	}
	if advice := errdefs.Advice(err); strings.Contains(advice, "nothing was changed") || !strings.Contains(advice, "the manager retries the hand-back by itself") {
		t.Fatalf("Undeploy left the workspace unstaging but advised %q", advice)
	}
}

// TestUndeployFinishesAfterAKillInsideTheRunReset: a manager killed while an undeploy
// made its run disk anew, after the commit had folded the guest's changes into the
// overlay, leaves run.qcow2 created but not yet written (createOverlay's O_EXCL open
// came first). No guest ever wrote to it; the restarted manager must still hand the
// overlay back, not fail its commit at every retry with the workspace stuck unstaging.
func TestUndeployFinishesAfterAKillInsideTheRunReset(t *testing.T) {
	const k = "ws-reset-killed"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "deployed", host: "h"}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs, rec.Phase = "tok", "h", phaseUnstaging
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec.Run, nil, 0o644); err != nil { // as the kill left it
		t.Fatal(err)
	}
	if _, _, err := m.finishUndeploy(context.Background(), rec); err != nil {
		t.Fatalf("the restarted manager cannot finish the undeploy: %v (the repository saw %v)", err, repo.calls)
	}
	if !repo.seen("CheckIn") {
		t.Fatalf("the workspace was not checked in: the repository saw %v", repo.calls)
	}
	if r, _ := m.journal.get(k); r != nil {
		t.Errorf("the handed-back workspace's record is still journaled: %+v", r)
	}
}

// undefineFailsHV is crashHV whose Undefine fails: libvirtd gone right after a
// check-in, before the domain could be removed.
type undefineFailsHV struct{ *crashHV }

func (h undefineFailsHV) Undefine(context.Context, string) error {
	return fmt.Errorf("%w: libvirtd is unreachable", errdefs.ErrHypervisor)
}

// TestUndeployCheckedInIsAnsweredSoWhenLocalCleanUpFails: once the Repository took the
// check-in, the workspace is in the repository; a domain libvirtd then cannot remove
// is this host's leftover, which the reconciler removes. The Undeploy is answered as
// done, not as a hand-back still unstaging here that the manager retries (vws move
// would stop there, its workspace left in the repository).
func TestUndeployCheckedInIsAnsweredSoWhenLocalCleanUpFails(t *testing.T) {
	const k = "ws-checked-in-cleanup"
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	m.hv = undefineFailsHV{hv}
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "deployed", host: "h"}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs = "tok", "h"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	res, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	if !repo.seen("CheckIn") {
		t.Fatalf("Undeploy: %v; the repository saw %v, no check-in", err, repo.calls)
	}
	if err != nil || res.Deployment != "in-repository" {
		t.Fatalf("the workspace is checked in (the repository has it %s), but Undeploy answered %+v, %v (advice %q)",
			repo.deployment, res, err, errdefs.Advice(err))
	}
	if r, _ := m.journal.get(k); r == nil || r.Phase != phaseUnstaging {
		t.Errorf("the leftover of the handed-back workspace is not kept for the reconciler to remove: %+v", r)
	}
}

// TestUndeployLeavesADamagedRunDiskAlone: a run disk with data but no qcow2 header is
// damage, not a reset cut short: the undeploy fails on it rather than discarding
// what the guest wrote.
func TestUndeployLeavesADamagedRunDiskAlone(t *testing.T) {
	const k = "ws-run-damaged"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	repo := &fakeRepo{deployment: "deployed", host: "h"}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs, rec.Phase = "tok", "h", phaseUnstaging
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Repeat([]byte("guest data "), 1<<12)
	if err := os.WriteFile(rec.Run, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.finishUndeploy(context.Background(), rec); err == nil {
		t.Fatal("the undeploy of a damaged run disk succeeded")
	}
	if got, err := os.ReadFile(rec.Run); err != nil || !bytes.Equal(got, damaged) {
		t.Fatalf("the damaged run disk was replaced (err %v)", err)
	}
	if repo.seen("CheckIn") {
		t.Fatalf("checked in without the guest's changes: the repository saw %v", repo.calls)
	}
}

// TestResetRunReplacesTheRunWhole: the run disk is made aside and renamed over the
// old, so nothing is ever left at its path without a header.
func TestResetRunReplacesTheRunWhole(t *testing.T) {
	_, _, rec := crashManager(t, "ws-reset-whole", stateShutdown, false)
	if err := os.WriteFile(rec.Run+".new", []byte("left by a kill"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resetRun(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := qcow2.ReadInfo(rec.Run); err != nil {
		t.Fatalf("the run disk after a reset: %v", err)
	}
	if _, err := os.Stat(rec.Run + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the aside copy is left: %v", err)
	}
}

// TestUndoOfARunningRecordHandsBackShutdown: a workspace an earlier Repository let be
// checked in as running comes out so; an undone deploy hands it back shut down,
// which the Repository takes, not running, which it now refuses (the lock would stay
// held here, retried for ever).
func TestUndoOfARunningRecordHandsBackShutdown(t *testing.T) {
	m, _, rec := crashManager(t, "ws-legacy-running", stateShutdown, false)
	repo := &fakeRepo{deployment: "staging", host: "h"}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs, rec.Phase, rec.StateAtCheckout = "tok", "h", phaseStaging, stateRunning
	if err := m.undoDeploy(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if want := []string{stateShutdown}; !slices.Equal(repo.checkedIn, want) {
		t.Fatalf("checked in with states %q, want %q", repo.checkedIn, want)
	}
}

// TestUndeployWithoutTheRepositorysHostChecksIn: a Repository whose answer names no
// host for a workspace it has deployed says nothing of another host holding it; the
// hand-back goes on (the Repository refuses an upload or check-in that is not the
// lock holder's), rather than deleting the guest's changes here unreturned.
func TestUndeployWithoutTheRepositorysHostChecksIn(t *testing.T) {
	const k = "ws-no-host"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "deployed", host: ""}
	serveFakeRepo(t, m, rec, repo)
	rec.Token, rec.CheckedOutAs = "tok", "h"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	res, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	if err != nil || !repo.seen("PUT") || !repo.seen("CheckIn") {
		t.Fatalf("Undeploy with the Repository naming no host: %+v, %v; the repository saw %v, want the overlay uploaded and checked in", res, err, repo.calls)
	}
}
