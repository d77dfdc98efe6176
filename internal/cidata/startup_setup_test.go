package cidata

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// A Startup whose files collide with one another (one file is the folder of another)
// can never be set up in any guest. UserData re-checks the description at this
// boundary; it must refuse such a Startup with ErrBadRequest instead of writing a
// script that stops with "vws: startup failed" at boot.
func TestUserDataRefusesFilesThatCannotAllExist(t *testing.T) {
	sh := shells(t)[0]
	dir, helper := guestDir(t)
	s := &describe.Startup{
		Executable: helper,
		Env:        []describe.EnvVar{{Name: "VWS_CIDATA_HELPER", Value: "1"}},
		Files: []describe.File{
			{Path: filepath.Join(dir, "job"), Mode: 0o644, Content: []byte("x\n")},
			{Path: filepath.Join(dir, "job", "config"), Mode: 0o644, Content: []byte("y\n")},
		},
	}
	script, err := UserData(s)
	if errors.Is(err, errdefs.ErrBadRequest) {
		return
	}
	if err != nil {
		t.Fatalf("UserData: %v", err)
	}
	out, code := runScript(t, sh, script, dir)
	t.Fatalf("UserData accepted files %s and %s; the guest's script exits %d, the program never runs:\n%s",
		s.Files[0].Path, s.Files[1].Path, code, out)
}

// With cap:user, the program runs as that user in cap:workingDirectory, which the
// script creates (as root) when the guest lacks it. The job must be able to write its
// output where it was told to work.
func TestStartupUserOwnsWhatIsSetUpForIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, _ := guestDir(t)
			wd := filepath.Join(dir, "run", "out")
			key := filepath.Join(dir, "home", ".ssh", "id_ed25519")
			s := &describe.Startup{
				Executable: "/bin/sh",
				Args: []string{"-c", "cat " + key + " && echo JOB-READ-KEY; " +
					"echo result >result.txt && echo JOB-WROTE-OUTPUT"},
				WorkingDirectory: wd,
				User:             "nobody",
				// A private key for the job, mode 0600 as ssh requires.
				Files: []describe.File{{Path: key, Mode: 0o600, Content: []byte("KEY\n")}},
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 0 || !strings.Contains(out, "JOB-READ-KEY") {
				t.Errorf("the job, running as nobody, cannot read the 0600 file %s placed for it (created by the script as root); output:\n%s", key, out)
			}
			if code != 0 || !strings.Contains(out, "JOB-WROTE-OUTPUT") {
				fi, _ := os.Stat(wd)
				t.Errorf("the job, running as nobody, cannot write in its working directory %s (mode %v, created by the script as root); output:\n%s", wd, fi.Mode(), out)
			}
			// A working directory the guest has already (/tmp, say) keeps its owner.
			s = &describe.Startup{Executable: "/bin/true", WorkingDirectory: dir, User: "nobody"}
			if out, code := runScript(t, sh, mustUserData(t, s), dir); code != 0 {
				t.Fatalf("the script exits %d:\n%s", code, out)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Errorf("the existing working directory %s was given to the job's user (%v)", dir, err)
			}
		})
	}
}

// With cap:user, the directories the script creates for a file placed for the job are
// the job's user's, as a working directory it creates is: the job must be able to
// write beside its file (ssh writes known_hosts beside the key). Directories the guest
// has already keep their owner.
func TestStartupUserOwnsTheDirectoriesCreatedForItsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, _ := guestDir(t)
			ssh := filepath.Join(dir, "home", "job", ".ssh")
			key := filepath.Join(ssh, "id_ed25519")
			s := &describe.Startup{
				Executable: "/bin/sh",
				Args:       []string{"-c", "echo host >" + filepath.Join(ssh, "known_hosts") + " && echo JOB-WROTE-BESIDE-KEY"},
				User:       "nobody",
				Files:      []describe.File{{Path: key, Mode: 0o600, Content: []byte("KEY\n")}},
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 0 || !strings.Contains(out, "JOB-WROTE-BESIDE-KEY") {
				fi, _ := os.Stat(ssh)
				t.Errorf("the job, running as nobody, cannot write in %s, which the script created for its file %s (mode %v, uid %d); output:\n%s",
					ssh, key, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, out)
			}
			if fi, err := os.Stat(filepath.Join(dir, "home")); err != nil || fi.Sys().(*syscall.Stat_t).Uid == 0 {
				t.Errorf("%s, created by the script for the job's file, is root's (%v)", filepath.Join(dir, "home"), err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Errorf("the existing directory %s was given to the job's user (%v)", dir, err)
			}
		})
	}
}
