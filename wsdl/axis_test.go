package wsdl_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// axisJars are the Debian libaxis-java jars (and dependencies) WSDL2Java needs.
var axisJars = []string{"axis", "axis-jaxrpc", "axis-saaj", "commons-discovery", "commons-logging", "javax.activation", "wsdl4j"}

// TestAxisWSDL2Java generates Apache Axis 1.4 client stubs (WSDL2Java -W, the toolkit GT
// 4.0 clients were built with) from every served WSDL and compiles them: the contract
// must be consumable by GT-era tooling, not only by vws.
func TestAxisWSDL2Java(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping Axis WSDL2Java in -short mode (about 30 s)")
	}
	java, err1 := exec.LookPath("java")
	javac, err2 := exec.LookPath("javac")
	if err1 != nil || err2 != nil {
		t.Skip("java/javac not found (Debian: default-jdk-headless); skipping the Axis 1.4 client check")
	}
	var cp []string
	for _, j := range axisJars {
		p := filepath.Join("/usr/share/java", j+".jar")
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not found (Debian: libaxis-java, libwsdl4j-java); skipping the Axis 1.4 client check", p)
		}
		cp = append(cp, p)
	}
	classpath := strings.Join(cp, string(os.PathListSeparator))
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			out := t.TempDir()
			for _, svc := range services {
				w, _ := filepath.Abs(servedWSDL(dl.name, svc))
				cmd := exec.Command(java, "-cp", classpath, "org.apache.axis.wsdl.WSDL2Java", "-W", "-o", out, w)
				msg, err := cmd.CombinedOutput()
				if err != nil || strings.Contains(string(msg), "Exception") || strings.Contains(string(msg), "already exists") {
					t.Fatalf("WSDL2Java %s: %v\n%s", w, err, msg)
				}
			}
			var sources []string
			err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".java") {
					sources = append(sources, p)
				}
				return err
			})
			if err != nil || len(sources) == 0 {
				t.Fatalf("WSDL2Java produced no sources: %v", err)
			}
			args := append([]string{"-nowarn", "-cp", classpath, "-d", t.TempDir()}, sources...)
			if msg, err := exec.Command(javac, args...).CombinedOutput(); err != nil {
				t.Fatalf("javac of the Axis stubs failed: %v\n%s", err, msg)
			}
		})
	}
}
