package wsrf_test

import (
	"context"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestSetTerminationTimeAtEndOfDay: xsd:dateTime writes the end of a day as 24:00:00
// (XML Schema 1.0 Part 2 §3.2.7: the first instant of the next day), which a caller
// asking for "the end of Friday" may send. It was refused as not an xsd:dateTime
// (UnableToSetTerminationTimeFault for a valid request); it is the next midnight.
func TestSetTerminationTimeAtEndOfDay(t *testing.T) {
	h, now, set := setTerminationHome(t, 0)
	day := now.AddDate(0, 0, 3)
	want := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ in, want string }{
		{day.Format("2006-01-02") + "T24:00:00Z", wsrf.FormatTime(want)},
		{day.Format("2006-01-02") + "T24:00:00.000Z", wsrf.FormatTime(want)},
		{day.Format("2006-01-02") + "T24:00:00+02:00", wsrf.FormatTime(want.Add(-2 * time.Hour))},
	} {
		for _, d := range dialect.Dialects {
			key := d.Name + c.in
			if err := h.Create(context.Background(), key, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := set(d, key, `<wsrl:RequestedTerminationTime>`+c.in+`</wsrl:RequestedTerminationTime>`); err != nil {
				t.Errorf("%s %s: %v", d.Name, c.in, err)
				continue
			}
			vals, _ := h.Property(context.Background(), d, key, wsa.QName{Space: d.RL, Local: "TerminationTime"})
			if len(vals) != 1 || vals[0].Text() != c.want {
				t.Errorf("%s %s: TerminationTime %v; want %s", d.Name, c.in, vals, c.want)
			}
		}
	}
	// 24 is the end of a day only at 00:00.
	for _, in := range []string{"T24:00:01Z", "T24:01:00Z", "T24:00:00.5Z", "T25:00:00Z"} {
		if _, err := wsrf.ParseDateTime(day.Format("2006-01-02") + in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
