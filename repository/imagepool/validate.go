package imagepool

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
)

// Limits on what a pool image may be called and described with. Names and metadata
// end up in XML (the description's software part) and in libvirt domain definitions,
// so they are tokens from a small charset, bounded in length.
const (
	MaxNameLen    = 64
	MaxLibraries  = 256 // as software.xsd says for sw:library
	digestPrefix  = "sha256:"
	digestHexLen  = 64
	blobPrefix    = "sha256-" // blob file names: sha256-<hex> (no ':' so qemu never reads a protocol)
	tempPrefix    = ".import-"
	maxOSPartsLen = 3
)

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hexRe   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)    // sw:Label
	verRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]{0,127}$`) // sw:VersionLabel
)

// OSFamilies are the operating-system families of software.xsd's sw:OSFamily.
var OSFamilies = []string{"linux", "bsd", "solaris", "windows", "other"}

// Architectures are the CPU architectures of hardware.xsd's hw:Architecture.
var Architectures = []string{"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"}

// archAliases are common other spellings, to say which one to use instead.
var archAliases = map[string]string{"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64",
	"i386": "i686", "i586": "i686", "x86": "i686", "armhf": "armv7l", "ppc64el": "ppc64le"}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errdefs.ErrBadRequest}, args...)...)
}

// ValidateName checks an image name: 1 to 64 characters from [A-Za-z0-9._-], starting
// with a letter or digit (so never "." or ".." or anything path-like), and not 64 hex
// digits (that would read as a digest).
func ValidateName(name string) error {
	switch {
	case name == "":
		return badRequest("an image name is required (1 to %d characters from A-Z a-z 0-9 . _ -)", MaxNameLen)
	case len(name) > MaxNameLen:
		return badRequest("image name %.20q… is %d characters long; the limit is %d", name, len(name), MaxNameLen)
	case !nameRe.MatchString(name):
		return badRequest("image name %q is not valid: use 1 to %d characters from A-Z a-z 0-9 . _ -, starting with a letter or digit (no slashes or path-like names)", name, MaxNameLen)
	case hexRe.MatchString(name):
		return badRequest("image name %q looks like a sha256 digest; choose a name that is not 64 hex digits", name)
	}
	return nil
}

// ParseDigest accepts "sha256:<64 lower-case hex>" or the bare 64 hex digits and returns
// the canonical "sha256:<hex>" form.
func ParseDigest(s string) (string, error) {
	h := strings.TrimPrefix(s, digestPrefix)
	if !hexRe.MatchString(h) {
		return "", badRequest("malformed digest %q: want sha256:<64 lower-case hex digits> or just the 64 hex digits", truncate(s, 80))
	}
	return digestPrefix + h, nil
}

// looksLikeDigest says whether s is meant as a digest rather than a name.
func looksLikeDigest(s string) bool {
	return strings.HasPrefix(s, digestPrefix) || hexRe.MatchString(s)
}

// normalizeMeta validates m and returns it in canonical form: OS family and
// architecture lower-case, libraries without duplicates. The name is checked only when
// requireName is set (imports); Match takes a Meta without a name.
func normalizeMeta(m Meta, requireName bool) (Meta, error) {
	if requireName || m.Name != "" {
		if err := ValidateName(m.Name); err != nil {
			return m, err
		}
	}
	osv, err := normalizeOS(m.OS)
	if err != nil {
		return m, err
	}
	m.OS = osv
	if m.Kernel != "" && !verRe.MatchString(m.Kernel) {
		return m, badRequest("kernel %q is not valid: give a version label of up to 128 characters from A-Z a-z 0-9 . _ + ~ : -, e.g. 6.1.0-18-amd64", truncate(m.Kernel, 80))
	}
	if m.Arch != "" {
		a := strings.ToLower(m.Arch)
		if !slices.Contains(Architectures, a) {
			hint := ""
			if alt, ok := archAliases[a]; ok {
				hint = fmt.Sprintf(" (%s is called %s here)", a, alt)
			}
			return m, badRequest("architecture %q is not known%s: use one of %s", truncate(m.Arch, 40), hint, strings.Join(Architectures, ", "))
		}
		m.Arch = a
	}
	if len(m.Libraries) > MaxLibraries {
		return m, badRequest("%d libraries given; at most %d are allowed", len(m.Libraries), MaxLibraries)
	}
	var libs []string
	for _, l := range m.Libraries {
		if err := validateLibrary(l); err != nil {
			return m, err
		}
		if !slices.Contains(libs, l) {
			libs = append(libs, l)
		}
	}
	m.Libraries = libs
	return m, nil
}

// normalizeOS checks "family[/distribution[/version]]", the three parts of sw:os.
func normalizeOS(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	parts := strings.Split(s, "/")
	bad := func(why string) error {
		return badRequest("OS %q is not valid (%s): write family[/distribution[/version]] with family one of %s, e.g. linux/debian/12",
			truncate(s, 80), why, strings.Join(OSFamilies, ", "))
	}
	if len(parts) > maxOSPartsLen {
		return "", bad("more than three parts")
	}
	parts[0] = strings.ToLower(parts[0])
	if !slices.Contains(OSFamilies, parts[0]) {
		return "", bad("unknown family " + strconvQuote(parts[0], 20))
	}
	if len(parts) > 1 && !labelRe.MatchString(parts[1]) {
		return "", bad("distribution must be 1 to 64 characters from A-Z a-z 0-9 . _ + -")
	}
	if len(parts) > 2 && !verRe.MatchString(parts[2]) {
		return "", bad("version must be 1 to 128 characters from A-Z a-z 0-9 . _ + ~ : -")
	}
	return strings.Join(parts, "/"), nil
}

// validateLibrary checks "name" or "name=version" (sw:library's name and version).
func validateLibrary(l string) error {
	name, ver, hasVer := strings.Cut(l, "=")
	if !labelRe.MatchString(name) || (hasVer && !verRe.MatchString(ver)) {
		return badRequest("library %q is not valid: write name or name=version, the name 1 to 64 characters from A-Z a-z 0-9 . _ + - and the version up to 128 from those and ~ :, e.g. glibc=2.36", truncate(l, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func strconvQuote(s string, n int) string { return fmt.Sprintf("%q", truncate(s, n)) }
