package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/test/harness"
)

// Apache Axis 1.4 as Debian's libaxis-java installs it, and what its WSDL2Java and the
// generated stubs need at run time.
const axisJarDir = "/usr/share/java"

var (
	axisJars = []string{"axis.jar", "jaxrpc.jar", "saaj.jar", "commons-discovery.jar", "commons-logging.jar", "wsdl4j.jar"}
	// optional: without them Axis logs that attachments are unsupported, nothing else
	axisOptionalJars = []string{"javax.activation.jar", "javax.mail.jar"}
	// Short-lived JVMs: the C1 compiler alone and the serial collector start fastest
	// (WSDL2Java runs in half the time).
	jvmFlags = []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"}
)

// axisToolchain is the JDK and Apache Axis 1.4 (Debian's jars).
type axisToolchain struct{ java, javac, classpath string }

// axisTools finds the JDK and Apache Axis 1.4 or skips the test.
func axisTools(t *testing.T) axisToolchain {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("Axis interop test needs a JDK (java and javac on PATH): java not found")
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skip("Axis interop test needs a JDK (java and javac on PATH): javac not found")
	}
	var cp []string
	for _, j := range axisJars {
		p := filepath.Join(axisJarDir, j)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("Axis interop test needs Apache Axis 1.4 (Debian: apt-get install libaxis-java): %v", err)
		}
		cp = append(cp, p)
	}
	for _, j := range axisOptionalJars {
		if p := filepath.Join(axisJarDir, j); axisFileExists(p) {
			cp = append(cp, p)
		}
	}
	return axisToolchain{java, javac, strings.Join(cp, string(os.PathListSeparator))}
}

// build generates stubs from wsdl with WSDL2Java -W and compiles them with the named
// hand-written sources of test/interop/axis into dir/classes, which it returns.
func (a axisToolchain) build(t *testing.T, dir, wsdl string, handWritten ...string) string {
	t.Helper()
	return a.buildFrom(t, dir, []string{wsdl}, handWritten...)
}

// buildFrom is build with the stubs of several WSDLs, generated into one tree: the
// schema types they share are generated into the same packages, once per WSDL, alike.
func (a axisToolchain) buildFrom(t *testing.T, dir string, wsdls []string, handWritten ...string) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("interop", "axis"))
	if err != nil {
		t.Fatal(err)
	}
	gen, classes := filepath.Join(dir, "gen"), filepath.Join(dir, "classes")
	start := time.Now()
	for _, wsdl := range wsdls {
		runTool(t, "WSDL2Java", 2*time.Minute, a.java, slices.Concat(jvmFlags, []string{"-cp", a.classpath,
			"org.apache.axis.wsdl.WSDL2Java", "-W", "-o", gen, wsdl})...)
	}
	sources := axisJavaFiles(t, gen)
	generated := len(sources)
	if generated == 0 {
		t.Fatalf("WSDL2Java generated no Java sources from %s", wsdls)
	}
	for _, f := range handWritten {
		sources = append(sources, filepath.Join(src, f))
	}
	argfile := filepath.Join(dir, "sources.txt")
	if err := os.WriteFile(argfile, []byte(strings.Join(sources, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var javacArgs []string
	for _, f := range jvmFlags {
		javacArgs = append(javacArgs, "-J"+f)
	}
	runTool(t, "javac", 2*time.Minute, a.javac, slices.Concat(javacArgs, []string{"-proc:none", "-nowarn", "-Xlint:none",
		"-encoding", "UTF-8", "-d", classes, "-cp", a.classpath, "@" + argfile})...)
	t.Logf("WSDL2Java and javac: %d generated files, %s", generated, time.Since(start).Round(time.Millisecond))
	return classes
}

// command is a java command line running class from classes with Axis on the class path.
func (a axisToolchain) command(classes, class string, args ...string) []string {
	return slices.Concat([]string{a.java}, jvmFlags, []string{"-cp", classes + string(os.PathListSeparator) + a.classpath, class}, args)
}

// axisNamespaceFreeQuery selects vw:name without a prefix: Axis 1.4 serializes the
// generated QueryExpressionType bean without any way to declare a namespace on (or
// above) the QueryExpression element, and a prefix must be declared there for the
// service to resolve it (WS-ResourceProperties: the expression's namespace context is
// that of the QueryExpression element). GT4-era clients wrote such queries.
const axisNamespaceFreeQuery = "/*/*[namespace-uri()='http://vws.dev/ns/2026/workspace' and local-name()='name']"

// TestInteropAxis generates an Apache Axis 1.4 client with WSDL2Java -W from the live
// ?wsdl URL of WorkspaceService, compiles it with the hand-written client in
// test/interop/axis into a temporary directory, and runs it in both dialects.
func TestInteropAxis(t *testing.T) {
	axis := axisTools(t)
	s := harness.Start(t)
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			c := newInteropCase(t, s, "axis", d)
			ops := "Wsrf12Ops.java"
			if d == dialect.GT4 {
				ops = "Gt4Ops.java"
			}
			classes := axis.build(t, t.TempDir(), c.wsdlURL(s), "Client.java", "Ops.java", "Fault.java", "Json.java", ops)
			start := time.Now()
			argv := axis.command(classes, "vwsinterop.Client",
				"--wsdl", c.wsdlURL(s), "--dialect", d.Name,
				"--key", c.key, "--destroy-key", c.destroyKey,
				"--termination", c.termination.Format(time.RFC3339),
				"--query", axisNamespaceFreeQuery)
			out := runTool(t, "Axis client", time.Minute, argv[0], argv[1:]...)
			t.Logf("client: %s", time.Since(start).Round(time.Millisecond))
			checkInteropReport(t, s, c, parseInteropReport(t, out))
			var addressing struct {
				Fault struct{ FaultCode, Namespace, FaultString, Action string } `json:"actionNotSupportedFault"`
			}
			if err := json.Unmarshal(out, &addressing); err != nil {
				t.Fatal(err)
			}
			if f := addressing.Fault; f.FaultCode != "ActionNotSupported" || f.Namespace != d.WSA.Namespace() || !strings.Contains(f.FaultString, "urn:bogus") {
				t.Errorf("Axis read the ActionNotSupported fault as %+v", f)
			}
		})
	}
}

// runTool runs a command, failing the test with its output if it fails; it returns stdout.
func runTool(t *testing.T, what string, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s\n%s", what, err, stderr.String(), stdout.String())
	}
	return stdout.Bytes()
}

func axisJavaFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(p, ".java") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func axisFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
