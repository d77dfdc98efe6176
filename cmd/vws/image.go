package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/repository/imagepool"
)

func newImageCommand() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the image pool: import, list and remove base images",
	}
	cmd.PersistentFlags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.AddCommand(newImageImportCommand(&base), newImageListCommand(&base), newImageRemoveCommand(&base))
	return cmd
}

// imageHTTP has no overall timeout: an import of a large image takes as long as it takes.
// The default transport waits up to 1 s for "100 Continue", so a refused import (a
// taken name, say) is answered before the body is sent.
var imageHTTP = &http.Client{Transport: cliTransport}

func newImageImportCommand(base *string) *cobra.Command {
	var m imagepool.Meta
	cmd := &cobra.Command{
		Use:   "import FILE --name NAME [--os OS] [--kernel K] [--arch A] [--lib L ...]",
		Short: "Import a qcow2 or raw base image (FILE, or - for standard input) into the pool",
		Long: `Import streams FILE to the Repository, which stores it under its sha256 digest, hashed
as it arrives. Identical content is stored once: a second name simply points at it.

  --os      family[/distribution[/version]], family one of linux, bsd, solaris, windows, other
            (e.g. linux/debian/12)
  --kernel  the kernel version (e.g. 6.1.0-18-amd64)
  --arch    x86_64, i686, aarch64, armv7l, ppc64le, s390x or riscv64
  --lib     a library as name or name=version (e.g. glibc=2.36); repeat for more`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(m.Name) == "" {
				return errors.New(`flag "name" not set: give the image's name in the pool with --name NAME (e.g. --name debian-12)`)
			}
			return importImage(cmd.Context(), baseURL(*base), args[0], m, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&m.Name, "name", "", "name of the image in the pool (required)")
	f.StringVar(&m.OS, "os", "", "operating system: family[/distribution[/version]]")
	f.StringVar(&m.Kernel, "kernel", "", "kernel version")
	f.StringVar(&m.Arch, "arch", "", "CPU architecture")
	f.StringArrayVar(&m.Libraries, "lib", nil, "library name or name=version (repeatable)")
	return cmd
}

func importImage(ctx context.Context, base, file string, m imagepool.Meta, out io.Writer) error {
	var src io.Reader
	size := int64(-1)
	if file == "-" {
		src = os.Stdin
	} else {
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file; give the path of a qcow2 or raw image, or - to read standard input", file)
		} else if err != nil {
			return fmt.Errorf("open the image: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file; to stream from a pipe, give - and feed standard input", file)
		}
		src, size = f, fi.Size()
		// Importing what is already there under this name is a success with nothing to
		// do, so that a site's provisioning can be run again.
		if img, err := sameImage(ctx, base, file, size, m); err != nil {
			if ctx.Err() != nil {
				return &interruptedError{fmt.Sprintf("the import was cancelled before it began; nothing was sent: vws image list shows what the pool holds under %s", m.Name)}
			}
			return err
		} else if img != nil {
			fmt.Fprintf(out, "%s %s\n%s, %s (virtual %s): already in the pool under this name with this content: nothing to do\n", img.Name, img.Digest,
				img.Format, formatBytes(img.Size), formatBytes(img.VirtualSize))
			return nil
		}
	}
	q := url.Values{"name": {m.Name}}
	for k, v := range map[string]string{"os": m.OS, "kernel": m.Kernel, "arch": m.Arch} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(m.Libraries) > 0 {
		q["lib"] = m.Libraries
	}

	var bar *progressbar.ProgressBar
	if term.IsTerminal(int(os.Stderr.Fd())) {
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("importing "+m.Name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		r := progressbar.NewReader(src, bar)
		src = &r
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/images?"+q.Encode(), src)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	resp, err := imageHTTP.Do(req)
	if bar != nil {
		bar.Finish()
	}
	if err != nil && ctx.Err() != nil {
		return &interruptedError{fmt.Sprintf("the import was cancelled; the pool keeps an image only once all of it arrived: vws image list shows whether %s is there", m.Name)}
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return serverError(resp)
	}
	var res imagepool.ImportResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("read the import answer: %w", err)
	}
	what := "new content, stored"
	if res.Deduplicated {
		what = "identical content was already in the pool: deduplicated, nothing new stored"
	}
	fmt.Fprintf(out, "%s %s\n%s, %s (virtual %s): %s\n", res.Name, res.Digest, res.Format,
		formatBytes(res.Size), formatBytes(res.VirtualSize), what)
	return nil
}

// sameImage returns the pool's image named m.Name when it holds file's content (size
// first, then the sha256 of the file, read only then) and the metadata given agrees;
// nil when the name is free, so the import goes ahead; an error when the name is
// another content's or the metadata differs (the server would refuse the upload, and
// this way not after the whole file went over the wire).
func sameImage(ctx context.Context, base, file string, size int64, m imagepool.Meta) (*imagepool.Image, error) {
	list, err := listImages(ctx, base)
	if err != nil {
		return nil, err
	}
	var img *imagepool.Image
	for i := range list.Images {
		if list.Images[i].Name == m.Name {
			img = &list.Images[i]
		}
	}
	if img == nil {
		return nil, nil
	}
	taken := refused("image name %q is already taken by %s (other content than %s); import under another name, or remove that image first (vws image remove %s)",
		m.Name, img.Digest, file, m.Name)
	if img.Size != size {
		return nil, taken
	}
	digest, _, err := fsutil.FileDigest(file)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", file, err)
	}
	if digest != img.Digest {
		return nil, taken
	}
	for _, f := range [][3]string{{"os", m.OS, img.OS}, {"kernel", m.Kernel, img.Kernel}, {"arch", m.Arch, img.Arch}} {
		// OS and architecture are told apart regardless of case, as the pool does; a
		// kernel label is kept as given and matched with its case.
		differ := !strings.EqualFold(f[1], f[2])
		if f[0] == "kernel" {
			differ = f[1] != f[2]
		}
		if f[1] != "" && differ {
			return nil, refused("image %q holds this content with --%s %q, not %q; to change its metadata, remove it (vws image remove %s) and import it again",
				m.Name, f[0], dash(f[2]), f[1], m.Name)
		}
	}
	if len(m.Libraries) > 0 && !sameSet(m.Libraries, img.Libraries) {
		return nil, refused("image %q holds this content with libraries %q, not %q; to change its metadata, remove it (vws image remove %s) and import it again",
			m.Name, strings.Join(img.Libraries, " "), strings.Join(m.Libraries, " "), m.Name)
	}
	return img, nil
}

// sameSet says whether a and b hold the same strings, whatever their order and
// repetitions: the pool keeps an image's libraries as a set.
func sameSet(a, b []string) bool {
	norm := func(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }
	return slices.Equal(norm(a), norm(b))
}

func listImages(ctx context.Context, base string) (*imagepool.ImageList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/images", nil)
	if err != nil {
		return nil, err
	}
	resp, err := imageHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, serverError(resp)
	}
	var list imagepool.ImageList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("read the image list: %w", err)
	}
	return &list, nil
}

func newImageListCommand(base *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the images in the pool",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := listImages(cmd.Context(), baseURL(*base))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tFORMAT\tSIZE\tVIRTUAL\tOS\tKERNEL\tARCH")
			for _, img := range list.Images {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", img.Name, shortDigest(img.Digest), img.Format,
					formatBytes(img.Size), formatBytes(img.VirtualSize), dash(img.OS), dash(img.Kernel), dash(img.Arch))
			}
			return tw.Flush()
		},
	}
}

func newImageRemoveCommand(base *string) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an image name from the pool (its content goes with its last name); refused while workspaces use it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Refused here in the pool's words: sent, a name beginning with a dot
			// (".", "..", "../x") is cleaned out of the URL path into another request,
			// answered with a 404 or 405 that says nothing of the name.
			if strings.HasPrefix(args[0], ".") {
				if err := imagepool.ValidateName(args[0]); err != nil {
					return &refusalError{err.Error()}
				}
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodDelete, baseURL(*base)+"/images/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			resp, err := imageHTTP.Do(req)
			if err != nil {
				return fmt.Errorf("remove image: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
				return serverError(resp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "removed", args[0])
			return nil
		},
	}
}

// serverError turns a failed answer into an error carrying the server's one-line
// message: the pool's refusal (exit 2, as a fault), unless the answer is not the
// pool's at all (a wrong --url: exit 1).
func serverError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(b))
	if msg == "" || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		msg = resp.Status
	}
	if resp.StatusCode == http.StatusNotFound && !strings.Contains(msg, "image") {
		return errors.New(msg + " (is this a vws Repository? check --url / $VWS_URL)")
	}
	return &refusalError{msg}
}

// refusalError is the image pool's refusal, told by its HTTP answer or, before an
// upload, read from what the pool lists: the service said no, as a fault says no.
type refusalError struct{ msg string }

func (e *refusalError) Error() string { return e.msg }

func refused(format string, args ...any) error { return &refusalError{fmt.Sprintf(format, args...)} }

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatBytes writes n in IEC units, e.g. "512 B", "1.5 GiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
