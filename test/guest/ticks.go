package guest

import (
	"regexp"
	"strconv"
)

// tickRE matches the "tick N" lines the tests' ticker job prints once a second on
// the serial console (test/testdata/manager/ticker.xml).
var tickRE = regexp.MustCompile(`(?m)^tick (\d+)\s*$`)

// Ticks lists the tick numbers on a console, in order.
func Ticks(console string) []int {
	var out []int
	for _, m := range tickRE.FindAllStringSubmatch(console, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// LastTick is the last tick number on a console, -1 when none.
func LastTick(console string) int {
	ts := Ticks(console)
	if len(ts) == 0 {
		return -1
	}
	return ts[len(ts)-1]
}
