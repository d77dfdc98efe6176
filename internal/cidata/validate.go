package cidata

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// Limits re-checked at this boundary. They are the schema's (schema/vws/capability.xsd)
// and the service's documented maxima.
const (
	MaxPathLen     = 1024    // cap:GuestPath, characters
	MaxArgs        = 256     // cap:argument elements
	MaxArgLen      = 4096    // cap:Argument, characters
	MaxEnv         = 256     // cap:environment elements
	MaxEnvValueLen = 4096    // cap:EnvironmentValue, characters
	MaxFiles       = 64      // cap:file elements
	MaxFileSize    = 1 << 20 // bytes of decoded content per file
	MaxInstanceID  = 128
	MaxHostnameLen = 253
)

var (
	// guestPathRE is cap:GuestPath's pattern: absolute, no empty, "." or ".." segment.
	guestPathRE = regexp.MustCompile(`^(/\.?[A-Za-z0-9_+@\-][A-Za-z0-9._+@\-]*)+$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	userNameRE  = regexp.MustCompile(`^[a-z_][a-z0-9_\-]{0,31}$`)
	instanceRE  = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,128}$`)
	hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$`)
)

func badRequest(field, format string, args ...any) error {
	return fmt.Errorf("cidata: %s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrBadRequest)
}

// checkGuestPath enforces cap:GuestPath.
func checkGuestPath(field, p string) error {
	if len(p) > MaxPathLen { // ASCII only, so bytes are characters
		return badRequest(field, "longer than %d characters", MaxPathLen)
	}
	if !guestPathRE.MatchString(p) {
		return badRequest(field, "%q is not an absolute guest path of [A-Za-z0-9._+@/-] without empty, \".\" or \"..\" segments", p)
	}
	return nil
}

// checkShellString enforces an xs:string with a maxLength that the script must carry:
// valid UTF-8 (XML cannot carry anything else) and no NUL (no shell word can).
func checkShellString(field, s string, maxChars int) error {
	if strings.IndexByte(s, 0) >= 0 {
		return badRequest(field, "contains a NUL byte, which a shell cannot pass on")
	}
	if !utf8.ValidString(s) {
		return badRequest(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > maxChars {
		return badRequest(field, "is %d characters long; at most %d are allowed", n, maxChars)
	}
	return nil
}

// validateStartup re-checks what the schema and the service already checked.
func validateStartup(s *describe.Startup) error {
	if err := checkGuestPath("startup executable", s.Executable); err != nil {
		return err
	}
	if len(s.Args) > MaxArgs {
		return badRequest("startup arguments", "%d given; at most %d are allowed", len(s.Args), MaxArgs)
	}
	for i, a := range s.Args {
		if err := checkShellString(fmt.Sprintf("startup argument %d", i+1), a, MaxArgLen); err != nil {
			return err
		}
	}
	if len(s.Env) > MaxEnv {
		return badRequest("startup environment", "%d variables given; at most %d are allowed", len(s.Env), MaxEnv)
	}
	for i, e := range s.Env {
		if !envNameRE.MatchString(e.Name) {
			return badRequest(fmt.Sprintf("startup environment variable %d name", i+1), "%q does not match [A-Za-z_][A-Za-z0-9_]{0,127}", e.Name)
		}
		if err := checkShellString(fmt.Sprintf("startup environment variable %s value", e.Name), e.Value, MaxEnvValueLen); err != nil {
			return err
		}
	}
	if s.WorkingDirectory != "" {
		if err := checkGuestPath("startup workingDirectory", s.WorkingDirectory); err != nil {
			return err
		}
	}
	if s.User != "" && !userNameRE.MatchString(s.User) {
		return badRequest("startup user", "%q does not match [a-z_][a-z0-9_-]{0,31}", s.User)
	}
	if len(s.Files) > MaxFiles {
		return badRequest("startup files", "%d given; at most %d are allowed", len(s.Files), MaxFiles)
	}
	for i, f := range s.Files {
		field := fmt.Sprintf("startup file %d", i+1)
		if err := checkGuestPath(field+" path", f.Path); err != nil {
			return err
		}
		if f.Mode&^0o777 != 0 {
			return badRequest(field+" mode", "%#o is not a permission mode of 0000..0777", uint32(f.Mode))
		}
		if len(f.Content) > MaxFileSize {
			return badRequest(field+" content", "%d bytes; at most %d are allowed", len(f.Content), MaxFileSize)
		}
	}
	placed := make([]string, len(s.Files))
	for i, f := range s.Files {
		placed[i] = f.Path
	}
	if conflict, as := describe.StartupPathConflict(s.Executable, s.WorkingDirectory, placed); conflict != "" {
		return badRequest("startup files", "%q is also %s: the guest cannot create both", conflict, as)
	}
	switch s.Output {
	case "", "console", "discard":
	default:
		return badRequest("startup output", "%q is not console or discard", s.Output)
	}
	switch s.OnExit {
	case "", "keep-running", "poweroff", "reboot":
	default:
		return badRequest("startup onExit", "%q is not keep-running, poweroff or reboot", s.OnExit)
	}
	return nil
}

// validateConfig checks the meta-data fields.
func validateConfig(c Config) error {
	if !instanceRE.MatchString(c.InstanceID) {
		return badRequest("instance-id", "%q does not match [A-Za-z0-9._-]{1,128}", c.InstanceID)
	}
	if c.Hostname != "" {
		if len(c.Hostname) > MaxHostnameLen {
			return badRequest("hostname", "longer than %d characters", MaxHostnameLen)
		}
		for _, l := range strings.Split(c.Hostname, ".") {
			if !hostLabelRE.MatchString(l) {
				return badRequest("hostname", "%q is not an RFC 1123 host name", c.Hostname)
			}
		}
	}
	return nil
}
