package describe

import (
	"regexp"
	"testing"

	xsdvalidate "github.com/terminalstatic/go-xsd-validate"
)

func BenchmarkStageLibxmlNoTimes(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	data = regexp.MustCompile(`(?s)<vw:creationTime>.*</vw:lastModified>`).ReplaceAll(data, nil)
	if err := v.xsd.ValidateMem(data, xsdvalidate.ParsErrDefault); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		v.xsd.ValidateMem(data, xsdvalidate.ParsErrDefault)
	}
}
func BenchmarkStageLibxmlMinimal(b *testing.B) {
	v := validator(b)
	data := readSample(b, "minimal-vm.xml")
	for b.Loop() {
		v.xsd.ValidateMem(data, xsdvalidate.ParsErrDefault)
	}
}
func BenchmarkStageLibxmlParseOnly(b *testing.B) {
	data := readSample(b, "full-vm.xml")
	for b.Loop() {
		libxmlElementLines(data)
	}
}
