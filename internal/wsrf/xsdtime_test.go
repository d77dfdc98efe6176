package wsrf

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	ok := map[string]time.Duration{
		"PT2H": 2 * time.Hour, "P1DT12H": 36 * time.Hour, "PT0.5S": 500 * time.Millisecond,
		"PT90M": 90 * time.Minute, "-PT1S": -time.Second, "P1D": 24 * time.Hour,
	}
	for in, want := range ok {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "2H", "P1H", "PT1D", "P999999Y"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
	for _, d := range []time.Duration{0, time.Second, 36 * time.Hour, 90 * time.Minute, 30 * 24 * time.Hour} {
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("round trip %v → %q → %v, %v", d, FormatDuration(d), back, err)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	got, err := ParseDateTime("2026-11-22T01:13:56.303Z")
	if err != nil || !got.Equal(time.Date(2026, 11, 22, 1, 13, 56, 303e6, time.UTC)) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := ParseDateTime("2026-11-22T01:13:56+02:00"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDateTime("yesterday"); err == nil {
		t.Fatal("accepted")
	}
}
