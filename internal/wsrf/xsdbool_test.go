package wsrf

import "testing"

func TestParseBoolean(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "1": true, " true\n": true, "false": false, "0": false} {
		if got, err := ParseBoolean(in); err != nil || got != want {
			t.Errorf("ParseBoolean(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yes", "True", "2"} {
		if _, err := ParseBoolean(bad); err == nil {
			t.Errorf("ParseBoolean(%q) accepted", bad)
		}
	}
}
