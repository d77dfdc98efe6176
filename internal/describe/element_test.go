package describe

import (
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// parseCreate parses a description as the SOAP layer parses a Create message's body
// (etree with default settings, internal/soap/envelope.go) and returns its root.
func parseCreate(t *testing.T, xml string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

// A carriage return the description carries as a character reference (&#13;) is part
// of the argument's value, as XML defines it; Validate keeps it. ValidateElement, the
// path every Create and Deploy takes, must give the guest the same value.
func TestValidateElementKeepsCarriageReturn(t *testing.T) {
	v := validator(t)
	x := doc(vm, startup("<cap:argument>a&#13;b</cap:argument>"+
		file("/crlf.txt", "<cap:content>line1&#13;\nline2&#13;\n</cap:content>")))

	direct, err := v.Validate([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	if got := direct.Startup.Args[0]; got != "a\rb" {
		t.Fatalf("Validate: argument %q, want %q", got, "a\rb")
	}

	d, err := v.ValidateElement(parseCreate(t, x))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Startup.Args[0]; got != "a\rb" {
		t.Errorf("ValidateElement: argument %q, want %q (the guest runs the program with another argument)", got, "a\rb")
	}
	if got := string(d.Startup.Files[0].Content); got != "line1\r\nline2\r\n" {
		t.Errorf("ValidateElement: file content %q, want %q", got, "line1\r\nline2\r\n")
	}
}

// The startup script creates every cap:file and the working directory in the guest
// (mkdir -p of each file's folder, then the file). A description whose own entries
// cannot all exist at once — a file that is also the folder of another file, or the
// working directory or one of its folders — can never start: the guest's script stops
// with "vws: startup failed" at boot. Create must refuse it, naming the element.
func TestStartupPathsThatCannotAllExistAreRefused(t *testing.T) {
	v := validator(t)
	tests := []struct{ name, at, doc string }{
		{"file is the folder of a later file", "/opt/job", doc(vm, startup(
			file("/opt/job", "<cap:content>x</cap:content>")+
				file("/opt/job/config", "<cap:content>y</cap:content>")))},
		{"file is the folder of an earlier file", "/opt/job", doc(vm, startup(
			file("/opt/job/config", "<cap:content>y</cap:content>")+
				file("/opt/job", "<cap:content>x</cap:content>")))},
		{"file is the working directory", "/srv/run", doc(vm, startup(
			"<cap:workingDirectory>/srv/run</cap:workingDirectory>"+
				file("/srv/run", "<cap:content>x</cap:content>")))},
		{"file is a folder of the working directory", "/srv/run", doc(vm, startup(
			"<cap:workingDirectory>/srv/run/out</cap:workingDirectory>"+
				file("/srv/run", "<cap:content>x</cap:content>")))},
		{"the executable is the folder of a placed file", "/bin/job", doc(vm, startup(
			file("/bin/job/config", "<cap:content>x</cap:content>")))},
		{"file is the folder of the executable", "/bin", doc(vm, startup(
			file("/bin", "<cap:content>x</cap:content>")))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := v.ValidateElement(parseCreate(t, tt.doc))
			if err == nil {
				var paths []string
				for _, f := range d.Startup.Files {
					paths = append(paths, f.Path)
				}
				t.Fatalf("accepted: files %q, working directory %q; the guest cannot create them all", paths, d.Startup.WorkingDirectory)
			}
			if me := metadata(t, err); !strings.Contains(me.Error(), `"`+tt.at+`"`) {
				t.Errorf("the refusal does not name %s: %v", tt.at, me)
			}
		})
	}
	// Files beside each other, and in the working directory, are fine.
	fine := doc(vm, startup("<cap:workingDirectory>/srv/run</cap:workingDirectory>"+
		file("/srv/run/in.txt", "<cap:content>x</cap:content>")+file("/srv/run.conf", "<cap:content>y</cap:content>")+
		file("/opt/job.sh", "<cap:content>z</cap:content>")+file("/opt/job/config", "<cap:content>w</cap:content>")))
	if _, err := v.ValidateElement(parseCreate(t, fine)); err != nil {
		t.Fatalf("files that can all exist are refused: %v", err)
	}
}

// The 256 KiB limit is on the description a client sends. ValidateElement (the path of
// every Create) measures etree's re-serialisation instead, which writes each ' and " of
// a text as &apos; / &quot; (6 bytes) and each > as &gt;: a shell script with ordinary
// quoting, sent as a 100 KiB description, is refused as "more than 262144 bytes".
func TestSizeLimitMeasuresWhatWasSent(t *testing.T) {
	v := validator(t)
	script := "#!/bin/sh\n" + strings.Repeat(`echo "it's" "done" >'/tmp/out'`+"\n", 4000)
	x := doc(vm, startup(file("/job.sh", "<cap:mode>755</cap:mode><cap:content><![CDATA["+script+"]]></cap:content>")))
	if len(x) >= DefaultLimits.MaxBytes/2 {
		t.Fatalf("test description is %d bytes; meant to be well under the limit", len(x))
	}
	if _, err := v.Validate([]byte(x)); err != nil {
		t.Fatalf("Validate refuses the %d-byte description: %v", len(x), err)
	}
	if _, err := v.ValidateElement(parseCreate(t, x)); err != nil {
		t.Errorf("ValidateElement (Create) refuses the %d-byte description that Validate accepts: %v", len(x), err)
	}
}
