package wsrf

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// endOfDay is xsd:dateTime's 24:00:00 (fractional zeros allowed), which Go's parser
// knows no hour 24 for.
var endOfDay = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})T24:00:00(?:\.0+)?(Z|[+-]\d{2}:\d{2})?$`)

// ParseDateTime parses an xsd:dateTime. A value without a zone is taken as UTC, as
// GT4 does. 24:00:00 is the first instant of the next day (XML Schema Part 2 §3.2.7).
func ParseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	v, next := s, 0
	if m := endOfDay.FindStringSubmatch(s); m != nil {
		v, next = m[1]+"T00:00:00"+m[2], 1
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.AddDate(0, 0, next).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an xsd:dateTime such as 2026-11-22T01:13:56.303Z", s)
}

var durationRE = regexp.MustCompile(`^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// MaxDuration is the longest xsd:duration ParseDuration takes: longer than any
// lifetime, shorter than what a time.Duration holds.
const MaxDuration = 100 * 365 * 24 * time.Hour

// ParseDuration parses an xsd:duration. Years and months count as 365 and 30 days,
// since a lifetime needs a fixed length.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	m := durationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, fmt.Errorf("%q is not an xsd:duration such as PT2H or P1DT12H", s)
	}
	var total float64
	units := []float64{365 * 24 * 3600, 30 * 24 * 3600, 24 * 3600, 3600, 60, 1}
	for i, u := range units {
		if m[i+2] == "" {
			continue
		}
		v, err := strconv.ParseFloat(m[i+2], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %v", s, err)
		}
		total += v * u
	}
	if total > MaxDuration.Seconds() {
		return 0, fmt.Errorf("%q is %w", s, errTooLong)
	}
	d := time.Duration(total * float64(time.Second))
	if m[1] == "-" {
		d = -d
	}
	return d, nil
}

var errTooLong = errors.New("longer than 100 years")

// TimeAfter is the time xsd:duration s from now. A positive one longer than
// ParseDuration takes is beyond any lifetime: it is the latest time, as far as a
// dateTime goes (year 9999), so that a site's maximum bounds it as it bounds such a
// dateTime, rather than refusing the same wish put as a duration.
func TimeAfter(now time.Time, s string) (time.Time, error) {
	d, err := ParseDuration(s)
	if errors.Is(err, errTooLong) && !strings.HasPrefix(strings.TrimSpace(s), "-") {
		return time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(d), nil
}

// ParseLifetime parses a requested lifetime, an xsd:duration. A positive one longer
// than ParseDuration takes is beyond any lifetime: it reads as the longest
// time.Duration, as far as a dateTime in year 9999 is from now (time.Time.Sub), so
// that a site's maximum bounds it as it bounds such a dateTime, rather than refusing
// the same wish put as a duration.
func ParseLifetime(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if errors.Is(err, errTooLong) && !strings.HasPrefix(strings.TrimSpace(s), "-") {
		return time.Duration(math.MaxInt64), nil
	}
	return d, err
}

// FormatDuration renders d as an xsd:duration (seconds precision).
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	secs := int64(d / time.Second)
	days, secs := secs/86400, secs%86400
	h, secs := secs/3600, secs%3600
	mnt, secs := secs/60, secs%60
	out := "P"
	if days > 0 {
		out += strconv.FormatInt(days, 10) + "D"
	}
	if h > 0 || mnt > 0 || secs > 0 || days == 0 {
		out += "T"
		if h > 0 {
			out += strconv.FormatInt(h, 10) + "H"
		}
		if mnt > 0 {
			out += strconv.FormatInt(mnt, 10) + "M"
		}
		if secs > 0 || (h == 0 && mnt == 0) {
			out += strconv.FormatInt(secs, 10) + "S"
		}
	}
	return out
}
