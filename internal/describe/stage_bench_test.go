package describe

import (
	"testing"

	"github.com/beevik/etree"
	xsdvalidate "github.com/terminalstatic/go-xsd-validate"
)

func BenchmarkStageScan(b *testing.B) {
	data := readSample(b, "full-vm.xml")
	for b.Loop() {
		d, _ := precheck(data, DefaultLimits)
		scan(d, DefaultLimits)
	}
}
func BenchmarkStageEtree(b *testing.B) {
	data := readSample(b, "full-vm.xml")
	for b.Loop() {
		doc := etree.NewDocument()
		doc.ReadFromBytes(data)
	}
}
func BenchmarkStageLibxml(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	for b.Loop() {
		v.xsd.ValidateMem(data, xsdvalidate.ParsErrDefault)
	}
}
func BenchmarkStageSemantics(b *testing.B) {
	v := validator(b)
	data := readSample(b, "full-vm.xml")
	s, _ := scan(data, DefaultLimits)
	for b.Loop() {
		v.checkSemantics(s.root)
		build(s.root)
	}
}
