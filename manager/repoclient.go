package manager

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/transfer"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// manifest is what CheckOut hands the Manager.
type manifest struct {
	Key, Name, Owner string
	Token            string
	Images           []manifestImage
	Description      *etree.Element
	State            string // the workspace state in the description
	Signer           string // subject of the certificate that signed the manifest
}

type manifestImage struct {
	Role, Digest, Format, Backing, Location string
	Size                                    int64
	// Chunks lists the digests of the image's pieces, when the Repository gives
	// them (pool images): checked on every core instead of in one SHA-256 stream.
	Chunks chunkhash.List
}

func (m *manifest) image(role string) *manifestImage {
	for i := range m.Images {
		if m.Images[i].Role == role {
			return &m.Images[i]
		}
	}
	return nil
}

// repoClient reaches the Repository: SOAP for check-out, check-in and state reports,
// HTTP for image bytes.
type repoClient struct {
	soap *client.Client
	http *http.Client
	// trust decides whose manifest signatures this host accepts; nil checks the
	// signature's integrity only.
	trust manifestsig.TrustFunc
	// streams is how many range requests fetch an image whose pieces the manifest
	// lists (0 or 1: one GET, resumed from a prefix).
	streams int
	// timeout bounds each SOAP call (Config.RepositoryTimeout).
	timeout time.Duration
}

// DefaultRepositoryTimeout bounds a SOAP call to a Repository: four times the
// default bound of its handlers, so only a Repository that stopped answering (a
// stopped or hung server that still accepts connections) reaches it, and a Deploy or
// Undeploy is not held for the HTTP client's 30 minutes.
const DefaultRepositoryTimeout = 2 * time.Minute

// bounded is ctx bounded by the call timeout; its error after a call says so when
// the bound, not the caller, ended the call.
func (c *repoClient) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d := cmp.Or(c.timeout, DefaultRepositoryTimeout)
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("the Repository did not answer within %s", d))
}

// silence names a call the bound ended (the cause says so), else returns err.
func silence(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	mine := cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded)
	if err != nil && mine && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
}

const lockHeader = "X-Vws-Lock-Token"

func workspaceEPR(r *record) *wsa.EPR {
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(r.Key)
	return &wsa.EPR{Version: wsa.Version(r.WSAVersion), Address: r.WorkspaceAddress, References: []*etree.Element{k}}
}

func wsBody(local string) *etree.Element {
	el := etree.NewElement("vw:" + local)
	el.CreateAttr("xmlns:vw", vwsns.Workspace)
	return el
}

// checkOut locks the workspace for this host.
// user is the caller whose Deploy this serves (the Repository decides whether it may
// manage the workspace); nil when asking again for a lock this host already holds.
func (c *repoClient) checkOut(ctx context.Context, epr *wsa.EPR, host, requestID string, self *wsa.EPR, user *identity.Identity) (*manifest, error) {
	body := wsBody("CheckOut")
	body.CreateElement("vw:Host").SetText(host)
	if self != nil {
		self.ChildElement(body, "vw:ManagerReference", "wsa")
	}
	if user != nil {
		body.CreateElement("vw:OnBehalfOf").SetText(user.String())
		for _, a := range user.Attributes {
			body.CreateElement("vw:OnBehalfOfAttribute").SetText(a)
		}
	}
	if requestID != "" {
		body.CreateElement("vw:RequestID").SetText(requestID)
	}
	cctx, cancel := c.bounded(ctx)
	defer cancel()
	resp, err := c.soap.Invoke(cctx, epr, "CheckOut", body)
	if err != nil {
		return nil, remoteErr("check the workspace out", silence(cctx, err))
	}
	m := &manifest{}
	if l := resp.SelectElement("Lock"); l != nil {
		m.Token = childText(l, "Token")
	}
	for _, c := range resp.ChildElements() {
		if c.Tag == "virtualWorkspace" && c.NamespaceURI() == vwsns.Workspace {
			m.Description = wsa.Detach(c)
			m.State = childText(c, "state")
		}
	}
	me := resp.SelectElement("Manifest")
	if me == nil || m.Token == "" || m.Description == nil {
		return nil, fmt.Errorf("%w: the repository's CheckOutResponse lacks the manifest, the lock or the description", errdefs.ErrImageIntegrity)
	}
	// What the Repository claims, unverified, is kept only to hand the lock back.
	_ = m.readImages(me, epr.Address) // claims, kept only to hand the lock back
	signed, signer, err := manifestsig.Verify(me, c.trust)
	if err != nil {
		return m, errdefs.WithAdvice(fmt.Errorf("%w: the manifest of workspace %s: %w", errdefs.ErrImageIntegrity, eprKey(epr), err),
			"nothing was staged; tell the repository's administrator: the manifest was altered or signed by a key this host does not trust")
	}
	verified := &manifest{Token: m.Token, Description: m.Description, State: m.State,
		Key: childText(signed, "WorkspaceKey"), Name: childText(signed, "name"), Owner: childText(signed, "owner"), Signer: signer.Subject.String()}
	if err := verified.readImages(signed, epr.Address); err != nil {
		return m, fmt.Errorf("%w: the signed manifest of %s: %w", errdefs.ErrImageIntegrity, verified.Key, err)
	}
	// A validly signed manifest of another workspace must not stand in for this one.
	if want := eprKey(epr); verified.Key != want {
		return m, fmt.Errorf("%w: the repository answered for workspace %s with the signed manifest of %s", errdefs.ErrImageIntegrity, want, verified.Key)
	}
	if verified.image("overlay") == nil || verified.image("base") == nil {
		return m, fmt.Errorf("%w: the signed manifest of %s names no base image or overlay", errdefs.ErrImageIntegrity, verified.Key)
	}
	return verified, nil
}

// readImages reads a manifest's images, resolving each Location against the
// Repository's address. A chunk list that does not fit its image is an error.
func (m *manifest) readImages(me *etree.Element, repoAddress string) error {
	base, _ := url.Parse(repoAddress)
	m.Images = m.Images[:0]
	var firstErr error
	for _, ie := range me.SelectElements("Image") {
		img := manifestImage{Role: childText(ie, "Role"), Digest: childText(ie, "Digest"), Format: childText(ie, "Format"),
			Backing: childText(ie, "BackingDigest"), Location: childText(ie, "Location")}
		if loc, err := url.Parse(img.Location); err == nil && base != nil && img.Location != "" {
			img.Location = base.ResolveReference(loc).String()
		}
		// A size that is no count of bytes would pass, negative, into the room a
		// deploy reserves, and let the images beside it fill the disk.
		size, err := strconv.ParseInt(childText(ie, "SizeBytes"), 10, 64)
		if (err != nil || size < 0) && firstErr == nil {
			firstErr = fmt.Errorf("the %s image %s has size %q, not a count of bytes", img.Role, img.Digest, childText(ie, "SizeBytes"))
		}
		img.Size = max(size, 0)
		if cb := childText(ie, "ChunkBytes"); cb != "" {
			n, err := strconv.ParseInt(cb, 10, 64)
			if err == nil {
				img.Chunks, err = chunkhash.Parse(n, img.Size, childText(ie, "ChunkDigests"))
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("the chunk list of the %s image %s: %w", img.Role, img.Digest, err)
			}
		}
		m.Images = append(m.Images, img)
	}
	return firstErr
}

// eprKey is the workspace key an EPR names.
func eprKey(epr *wsa.EPR) string {
	for _, r := range epr.References {
		if r.Tag == "WorkspaceKey" && r.NamespaceURI() == vwsns.Workspace {
			return strings.TrimSpace(r.Text())
		}
	}
	return ""
}

// checkIn returns the workspace with its (uploaded) overlay and memory image.
func (c *repoClient) checkIn(ctx context.Context, r *record, overlayDigest, memoryDigest, state string) error {
	body := wsBody("CheckIn")
	body.CreateElement("vw:LockToken").SetText(r.Token)
	body.CreateElement("vw:OverlayDigest").SetText(overlayDigest)
	if memoryDigest != "" {
		body.CreateElement("vw:MemoryDigest").SetText(memoryDigest)
	}
	body.CreateElement("vw:State").SetText(state)
	cctx, cancel := c.bounded(ctx)
	defer cancel()
	if _, err := c.soap.Invoke(cctx, workspaceEPR(r), "CheckIn", body); err != nil {
		return remoteErr("check the workspace in", silence(cctx, err))
	}
	return nil
}

// disown tells the Repository at repository (a base URL) that this host, at self,
// holds no record of workspace key, which it has checked out here.
func (c *repoClient) disown(ctx context.Context, repository, key string, self *wsa.EPR) (string, error) {
	epr := workspaceEPR(&record{Key: key, WorkspaceAddress: repository + "/wsrf/services/" + vwsns.WorkspaceService, WSAVersion: int(self.Version)})
	body := wsBody("Disown")
	self.ChildElement(body, "vw:ManagerReference", "wsa")
	cctx, cancel := c.bounded(ctx)
	defer cancel()
	resp, err := c.soap.Invoke(cctx, epr, "Disown", body)
	if err != nil {
		return "", remoteErr("disown the workspace", silence(cctx, err))
	}
	return childText(resp, "State"), nil
}

// reportState tells the Repository what this host observed. A report the Repository
// answers with another state than it told was not applied (it had applied one observed
// later: this host's clock stepped back); errNotApplied has it sent again.
func (c *repoClient) reportState(ctx context.Context, r *record, host, state, deployment, detail string) error {
	body := wsBody("ReportState")
	body.CreateElement("vw:LockToken").SetText(r.Token)
	body.CreateElement("vw:Host").SetText(host)
	body.CreateElement("vw:State").SetText(state)
	if deployment != "" {
		body.CreateElement("vw:Deployment").SetText(deployment)
	}
	body.CreateElement("vw:ObservedAt").SetText(wsrf.FormatTime(time.Now().UTC()))
	if detail != "" {
		if len(detail) > 4000 {
			detail = strings.ToValidUTF8(detail[:4000], "") // not half a character
		}
		body.CreateElement("vw:Detail").SetText(detail)
	}
	cctx, cancel := c.bounded(ctx)
	defer cancel()
	resp, err := c.soap.Invoke(cctx, workspaceEPR(r), "ReportState", body)
	if err != nil {
		return remoteErr("report the workspace's state", silence(cctx, err))
	}
	if got := childText(resp, "State"); got != state || deployment != "" && childText(resp, "Deployment") != deployment {
		return fmt.Errorf("%w: the repository answered %s/%s", errNotApplied, got, childText(resp, "Deployment"))
	}
	return nil
}

// errNotApplied is a report the Repository took for older than one it applied.
var errNotApplied = errors.New("the report was not applied: the repository holds a later one")

// whereabouts reads where the Repository has the workspace: its deployment and the
// host holding it (recovery uses them to learn whether a check-in went through
// before a crash).
func (c *repoClient) whereabouts(ctx context.Context, r *record) (deployment, host string, err error) {
	cctx, cancel := c.bounded(ctx)
	defer cancel()
	els, err := c.soap.GetMultipleResourceProperties(cctx, workspaceEPR(r), []wsa.QName{
		{Space: vwsns.Workspace, Local: "deployment"}, {Space: vwsns.Workspace, Local: "host"}})
	if err != nil {
		return "", "", remoteErr("read the workspace's deployment", silence(cctx, err))
	}
	for _, el := range els {
		switch el.Tag {
		case "deployment":
			deployment = strings.TrimSpace(el.Text())
		case "host":
			host = strings.TrimSpace(el.Text())
		}
	}
	return deployment, host, nil
}

// progressFunc is told how many bytes of a transfer are done.
type progressFunc func(done, total int64)

// fetch downloads img to path, resuming from path+".part", and verifies it. When the
// manifest lists the image's pieces, several streams fetch them by range requests,
// each piece checked once complete (fetchPieces), and a resumed transfer keeps every
// matching piece; one stream does when the server ignores ranges or the Manager is
// configured so, its pieces checked on every core while it arrives. Without a list
// (overlay, memory), one stream is hashed whole.
func (c *repoClient) fetch(ctx context.Context, img *manifestImage, token, path string, progress progressFunc) error {
	return c.fetchTo(ctx, img, token, path, progress, true)
}

// fetchTo is fetch; durable false leaves the staged file's fsync to the caller (a
// cache entry is synced in the background: cachesync.go), and asks for no write-back
// on the way: blocks the kernel has not allocated yet are not among what the
// caller's next fsync of a small file (a journal record) waits for, on ext4's
// data=ordered.
func (c *repoClient) fetchTo(ctx context.Context, img *manifestImage, token, path string, progress progressFunc, durable bool) error {
	if img.Location == "" {
		return fmt.Errorf("%w: the manifest gives no location for the %s image %s", errdefs.ErrImageIntegrity, img.Role, img.Digest)
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("stage %s image: %w", img.Role, err)
	}
	defer f.Close()
	chunked := !img.Chunks.Empty()
	if chunked && c.fetchStreams() > 1 {
		err := c.fetchPieces(ctx, img, token, f, progress, durable)
		var mismatch *chunkhash.MismatchError
		switch {
		case err == nil:
			return commitPart(f, part, path, durable)
		case errors.Is(err, errRangeIgnored):
			slog.Warn("the repository ignores range requests: fetching the image in one stream", "role", img.Role, "digest", img.Digest, "location", img.Location)
		case errors.As(err, &mismatch):
			f.Close()
			os.Remove(part)
			return errdefs.WithAdvice(fmt.Errorf("%w: the %s image %s from %s: %w",
				errdefs.ErrImageIntegrity, img.Role, img.Digest, img.Location, err), integrityAdvice)
		case errors.Is(err, errdefs.ErrImageIntegrity): // the server's copy has another size
			f.Close()
			os.Remove(part)
			return err
		default: // kept to resume
			return err
		}
	}
	var h hash.Hash
	var have int64
	// Resume: check what an earlier attempt left, ask for the rest.
	if chunked {
		have, err = keepCheckedPieces(ctx, f, img.Chunks)
	} else {
		h = sha256.New()
		have, err = io.Copy(h, f)
	}
	if err != nil {
		return fmt.Errorf("read partial %s: %w", part, err)
	}
	restart := func() error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if h != nil {
			h.Reset()
		}
		have = 0
		return nil
	}
	if have > img.Size {
		if err := restart(); err != nil {
			return err
		}
	}
	checked := chunked && have == img.Size // every piece was kept, and checked
	resumedFrom := have                    // an unchecked prefix, when not chunked
	if have < img.Size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, img.Location, nil)
		if err != nil {
			return fmt.Errorf("%w: image location %q: %w", errdefs.ErrImageIntegrity, img.Location, err)
		}
		if token != "" {
			req.Header.Set(lockHeader, token)
		}
		if have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		resp, err := c.transfer(req)
		if err != nil {
			return fmt.Errorf("fetch %s image from %s: %w", img.Role, img.Location, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0,
			resp.StatusCode == http.StatusPartialContent && wrongLength(resp, img.Size):
			// The Repository's copy is shorter (or longer) than the manifest says: no
			// retry completes the .part from it, which is not kept to fail the next
			// Deploy the same way; once the copy is repaired, the fetch starts over.
			f.Close()
			os.Remove(part)
			return wrongCopyError(img, resp)
		case resp.StatusCode == http.StatusPartialContent && have > 0:
			// Only the bytes asked for may land after what is kept.
			cr := resp.Header.Get("Content-Range")
			if !strings.HasPrefix(cr, fmt.Sprintf("bytes %d-%d/", have, img.Size-1)) {
				return fmt.Errorf("fetch %s image from %s (resumable): asked for bytes %d-, the server answered with Content-Range %q", img.Role, img.Location, have, cr)
			}
		case resp.StatusCode == http.StatusOK:
			if have > 0 { // the server ignored the range: start over
				if err := restart(); err != nil {
					return err
				}
			}
		default:
			return fetchStatusError(fmt.Sprintf("fetch %s image from %s", img.Role, img.Location), resp)
		}
		src := io.Reader(io.LimitReader(resp.Body, img.Size-have+1))
		if progress != nil {
			src = &progressReader{r: src, done: have, total: img.Size, fn: progress}
		}
		opt := transfer.Options{Offset: have, NoWriteback: !durable}
		var ck *chunkhash.Checker
		copyCtx, stop := context.WithCancel(ctx)
		defer stop()
		if chunked {
			ck = chunkhash.NewChecker(copyCtx, f, img.Chunks, int(have/img.Chunks.ChunkBytes))
			base := have
			opt.Written = func(n int64) {
				ck.Written(base + n)
				if ck.Err() != nil {
					stop() // a bad piece: the rest need not come
				}
			}
		}
		n, _, err := transfer.CopyHashed(copyCtx, f, src, h, opt)
		have += n
		if ck != nil {
			cerr := ck.Wait()
			var mismatch *chunkhash.MismatchError
			if errors.As(cerr, &mismatch) {
				f.Close()
				os.Remove(part)
				return errdefs.WithAdvice(fmt.Errorf("%w: the %s image %s from %s: %w",
					errdefs.ErrImageIntegrity, img.Role, img.Digest, img.Location, cerr), integrityAdvice)
			}
			if cerr != nil && err != nil && copyCtx.Err() != nil && ctx.Err() == nil {
				// The check failed (reading a piece back), and stopped the copy: say why.
				return fmt.Errorf("fetch %s image from %s (resumable): checking it: %w", img.Role, img.Location, cerr)
			}
			checked = cerr == nil && err == nil && have == img.Size
		}
		if err != nil {
			if isNoSpace(err) {
				// Not called resumable: the cache's .part of a full disk is removed
				// (stageShared), its space wanted back.
				return fmt.Errorf("fetch %s image from %s: %w", img.Role, img.Location, err)
			}
			return fmt.Errorf("fetch %s image from %s (resumable): %w", img.Role, img.Location, err)
		}
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	got := ""
	if h != nil {
		got = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	if have != img.Size || (chunked && !checked) || (!chunked && got != img.Digest) {
		f.Close()
		os.Remove(part)
		if !chunked && resumedFrom > 0 && have == img.Size && ctx.Err() == nil {
			// The bytes kept from an earlier attempt were not checked on their own:
			// they, not the repository's copy, may be what is wrong. Once more, whole.
			slog.Warn("a resumed transfer does not match its digest: fetching the image again from its start", "role", img.Role, "digest", img.Digest, "location", img.Location)
			return c.fetchTo(ctx, img, token, path, progress, durable)
		}
		what := "digest " + got
		if chunked {
			what = "its pieces not all matching the manifest's list"
		}
		return errdefs.WithAdvice(fmt.Errorf("%w: the %s image from %s has %d bytes with %s; the manifest says %d bytes, %s",
			errdefs.ErrImageIntegrity, img.Role, img.Location, have, what, img.Size, img.Digest), integrityAdvice)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(part, path)
}

// wrongLength says whether a 206 gives the length of the server's copy as other than
// size (a length of "*" is unknown, not wrong).
func wrongLength(resp *http.Response, size int64) bool {
	_, total, ok := strings.Cut(resp.Header.Get("Content-Range"), "/")
	return ok && total != "*" && total != strconv.FormatInt(size, 10)
}

// wrongCopyError is a range request for bytes of the image the manifest describes
// that the Repository refused as past the end of its copy (416), or answered giving
// its copy another length: its copy is damaged (truncated, most likely), and every
// retry fails the same way until it is repaired there.
func wrongCopyError(img *manifestImage, resp *http.Response) error {
	cr := resp.Header.Get("Content-Range")
	how, has := "shorter than its manifest says", "it ends before the bytes asked for"
	if _, total, _ := strings.Cut(cr, "/"); total != "" && total != "*" {
		has = "it has " + total + " bytes"
		if n, err := strconv.ParseInt(total, 10, 64); err == nil && n > img.Size {
			how = "longer than its manifest says"
		}
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: the repository's copy of the %s image %s (%s) is %s: %s, the manifest says %d (HTTP %d to a range request, Content-Range %q)",
		errdefs.ErrImageIntegrity, img.Role, img.Digest, img.Location, how, has, img.Size, resp.StatusCode, cr),
		"nothing was defined or booted, and retrying fails the same way: the repository's site administrator should check its copy of the image and repair it (restore it from a backup, or upload it again)")
}

// commitPart makes a complete, checked .part file the staged image: durable first
// when asked, since a deployed workspace boots from it.
func commitPart(f *os.File, part, path string, durable bool) error {
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(part, path)
}

// keepCheckedPieces keeps of a partial transfer the whole pieces that match the list
// (all of them, or none when one differs) and returns how many bytes that is, with f
// cut and positioned there.
func keepCheckedPieces(ctx context.Context, f *os.File, l chunkhash.List) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var keep int64
	if size := min(fi.Size(), l.Size); size == l.Size {
		keep = l.Size
	} else {
		keep = size / l.ChunkBytes * l.ChunkBytes
	}
	pieces := chunkhash.Count(keep, l.ChunkBytes)
	if err := chunkhash.Verify(ctx, f, l, 0, pieces); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		keep = 0
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	_, err = f.Seek(keep, io.SeekStart)
	return keep, err
}

type progressReader struct {
	r           io.Reader
	done, total int64
	fn          progressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.fn(p.done, p.total)
	return n, err
}

// upload sends a file to the Repository (overlay or memory) and returns the digest
// the Repository now holds it under.
func (c *repoClient) upload(ctx context.Context, r *record, kind, path string) (string, error) {
	digest, size, err := fileDigest(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	url := repositoryBase(r.WorkspaceAddress) + "/workspaces/" + r.Key + "/" + kind
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set(lockHeader, r.Token)
	req.Header.Set("X-Vws-Sha256", digest)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.transfer(req)
	if err != nil {
		return "", fmt.Errorf("upload the %s to %s: %w", kind, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge {
			return "", &uploadRefusedError{kind: kind, status: resp.StatusCode, reason: strings.TrimSpace(string(msg))}
		}
		return "", fmt.Errorf("upload the %s to %s: HTTP %d: %s", kind, url, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	var out struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&out); err != nil || out.Digest == "" {
		return "", fmt.Errorf("upload the %s to %s: unreadable answer: %v", kind, url, err)
	}
	return out.Digest, nil
}

// uploadRefusedError is an upload the Repository refused for its bytes (400: not an
// overlay it can take, a digest that does not match; 413: too large): the same file
// sent again is refused again, unlike a 5xx or a broken connection.
type uploadRefusedError struct {
	kind   string // overlay or memory
	status int
	reason string // the Repository's
}

func (e *uploadRefusedError) Error() string {
	return fmt.Sprintf("the repository refused the workspace's %s (HTTP %d): %s", e.kind, e.status, e.reason)
}

func (e *uploadRefusedError) Unwrap() error { return errdefs.ErrImageIntegrity }

// repositoryBase is the server root of a WorkspaceService address.
func repositoryBase(address string) string {
	if i := strings.Index(address, "/wsrf/services/"); i >= 0 {
		return address[:i]
	}
	return strings.TrimRight(address, "/")
}

// fetchStatusError is an image GET the Repository answered with an error status. A
// 404 is the workspace or the image gone from it (destroyed while being deployed), a
// fact the caller can act on, not the manager failing.
func fetchStatusError(what string, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	err := fmt.Errorf("%s: HTTP %d: %s", what, resp.StatusCode, strings.TrimSpace(string(msg)))
	if resp.StatusCode == http.StatusNotFound {
		return errdefs.WithAdvice(fmt.Errorf("%w: %w", errdefs.ErrResourceUnknown, err),
			"the workspace or its image left the repository (destroyed meanwhile?); nothing was deployed")
	}
	return err
}

var fileDigest = fsutil.FileDigest

// remoteErr keeps the Repository's fault type: a locked workspace stays a
// WorkspaceLockedFault for the Manager's caller, a wrong state a WorkspaceStateFault.
func remoteErr(what string, err error) error {
	var fe *client.FaultError
	if errors.As(err, &fe) {
		if sentinel := container.SentinelOf(fe.Type); sentinel != nil {
			// The Repository's fault keeps its type, its advice stays advice, and the
			// Manager's caller reads each part once.
			return container.PassOn(sentinel, fe.Description, fe.Fault, "the repository refused to "+what)
		}
		if fe.Type == "ServiceFault" && fe.Fault != nil && fe.Fault.Code == soap.CodeServer {
			// The Repository's own failure (an incident there, busy, out of room):
			// its words, and the incident id its administrator looks up, reach the
			// caller as they were, not as an incident of the Manager's.
			return container.PassOn(errdefs.ErrUnavailable, fe.Description, fe.Fault, "the repository failed to "+what)
		}
		// A Client-coded ServiceFault says the Manager's request was wrong: the
		// Manager's failure, not the caller's.
		return fmt.Errorf("the repository refused to %s: %w", what, err)
	}
	u := &unreachableError{what: what, err: err, sent: mayHaveBeenSent(err)}
	if !u.sent {
		return errdefs.WithAdvice(u, "nothing was changed; retry when the workspace's Repository answers again (its site administrator: is vws serve running there?)")
	}
	return u
}

// unreachableError is a call that got no answer from the Repository. When the
// request may have been sent, its outcome is unknown: the Repository may or may not
// have acted on it.
type unreachableError struct {
	what string
	err  error
	sent bool
}

func (e *unreachableError) Error() string {
	return "cannot reach the repository to " + e.what + ": " + e.err.Error()
}

// Unwrap gives the cause, and ErrUnavailable: the message is written for the caller,
// whose fault keeps it.
func (e *unreachableError) Unwrap() []error { return []error{e.err, errdefs.ErrUnavailable} }

// mayHaveBeenSent says whether a call that failed so may have reached the
// Repository: not when it failed before leaving this process, no connection was
// made (refused, no route, unknown host) or its TLS handshake failed, since the
// request goes out only after those.
func mayHaveBeenSent(err error) bool {
	if errors.Is(err, client.ErrNotSent) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var cert *tls.CertificateVerificationError
	return !errors.As(err, &cert)
}

// unreachable says whether err is a call the Repository did not answer.
func unreachable(err error) bool {
	var u *unreachableError
	return errors.As(err, &u)
}

// outcomeUnknown says whether err leaves open whether the Repository acted.
func outcomeUnknown(err error) bool {
	var u *unreachableError
	return errors.As(err, &u) && u.sent
}

func childText(el *etree.Element, local string) string {
	for _, c := range el.ChildElements() {
		if c.Tag == local {
			return strings.TrimSpace(c.Text())
		}
	}
	return ""
}
