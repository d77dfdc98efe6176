package describe

import "path"

// StartupPathConflict finds a path the startup would need both as a file and as a
// folder: a placed file, or the executable, that is the working directory or a folder
// of it or of another placed file, or a placed file that is a folder of the executable.
// The guest could never create them all, and the job would fail at boot. It returns that path and what needs it as a folder, or "" when
// nothing does. Paths are absolute guest paths, as checked before.
func StartupPathConflict(executable, workingDir string, files []string) (conflict, neededAs string) {
	folders := map[string]string{}
	need := func(p, as string) {
		if _, ok := folders[p]; !ok {
			folders[p] = as
		}
	}
	if workingDir != "" {
		need(workingDir, "the working directory")
		for d := path.Dir(workingDir); d != "/"; d = path.Dir(d) {
			need(d, "a folder of the working directory "+workingDir)
		}
	}
	for _, f := range files {
		for d := path.Dir(f); d != "/"; d = path.Dir(d) {
			need(d, "the folder of the placed file "+f)
		}
	}
	// The executable, placed or from the image, is only reachable through folders.
	if executable != "" {
		for d := path.Dir(executable); d != "/"; d = path.Dir(d) {
			need(d, "a folder of the executable "+executable)
		}
	}
	for _, f := range files {
		if as, ok := folders[f]; ok {
			return f, as
		}
	}
	if as, ok := folders[executable]; ok && executable != "" {
		return executable, as
	}
	return "", ""
}
