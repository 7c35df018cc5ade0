package governance

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// FuzzKeyFromHeaders checks that the extracted key is trimmed, comes from
// one of the two headers, and that a bearer key wins over x-api-key.
func FuzzKeyFromHeaders(f *testing.F) {
	f.Add("Bearer sk-abc", "")
	f.Add("bearer  sk-abc ", "sk-other")
	f.Add("Basic dXNlcjpwYXNz", "sk-api")
	f.Add("Bearer ", "sk-api")
	f.Add("BEARER\tsk-tab", "")
	f.Add("", "  sk-only  ")
	f.Fuzz(func(t *testing.T, authorization, xAPIKey string) {
		k := KeyFromHeaders(authorization, xAPIKey)
		if k != strings.TrimSpace(k) {
			t.Fatalf("key %q is not trimmed", k)
		}
		fromBearer := k != "" && strings.Contains(authorization, k)
		if k != "" && !fromBearer && k != strings.TrimSpace(xAPIKey) {
			t.Fatalf("key %q comes from neither header", k)
		}
		a := strings.TrimSpace(authorization)
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			if want := strings.TrimSpace(a[7:]); want != "" && k != want {
				t.Fatalf("bearer %q gave key %q", want, k)
			}
		}
	})
}

// FuzzNanoUSD checks that an accepted amount is exactly the decimal written
// (no rounding), within bounds, and survives FormatUSD and the JSON forms.
func FuzzNanoUSD(f *testing.F) {
	for _, s := range []string{"12.5", "0.000000001", "0.0000000001", "1e-9", "1E3", "-1", "1000000000", "1000000000.000000001",
		" 3 ", "", "0x10", ".5", "5.", "+7", "1_000", "NaN", "Inf", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nano, err := USD(s).NanoUSD()
		if err != nil {
			return
		}
		if nano < 0 || nano > maxBudgetNanoUSD {
			t.Fatalf("%q accepted as %d, out of bounds", s, nano)
		}
		if strings.TrimSpace(s) == "" {
			if nano != 0 {
				t.Fatalf("empty amount is %d", nano)
			}
			return
		}
		d, derr := decimal.NewFromString(strings.TrimSpace(s))
		if derr != nil {
			t.Fatalf("%q accepted though decimal cannot read it: %v", s, derr)
		}
		if !decimal.New(nano, -9).Equal(d) {
			t.Fatalf("%q accepted as %d nano-USD, which is %s", s, nano, FormatUSD(nano))
		}
		back, err := USD(FormatUSD(nano)).NanoUSD()
		if err != nil || back != nano {
			t.Fatalf("FormatUSD(%d) = %q reads back as %d, %v", nano, FormatUSD(nano), back, err)
		}
		js, err := USD(s).MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of accepted %q: %v", s, err)
		}
		var u USD
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("UnmarshalJSON(%s): %v", js, err)
		}
		if again, err := u.NanoUSD(); err != nil || again != nano {
			t.Fatalf("JSON round trip of %q: %d, %v", s, again, err)
		}
	})
}

// FuzzPeriod checks that every accepted period name maps to a period whose
// window contains the instant and starts at midnight UTC (Monday for weeks,
// the 1st for months).
func FuzzPeriod(f *testing.F) {
	f.Add("daily", int64(1_700_000_000))
	f.Add(" Weekly ", int64(0))
	f.Add("1mo", int64(-86_401))
	f.Add("7d", int64(253_402_300_799))
	f.Add("none", int64(1))
	f.Add("fortnightly", int64(1))
	f.Fuzz(func(t *testing.T, name string, unix int64) {
		p, err := parsePeriod(name)
		if err != nil {
			return
		}
		if q, err := parsePeriod(p.String()); err != nil || q != p {
			t.Fatalf("%q: period %v does not parse back from %q", name, p, p.String())
		}
		// Years 1 to 9999: the range time.Date works in.
		const minUnix, maxUnix = -62_135_596_800, 253_402_300_799
		unix = minUnix + mod(unix, maxUnix-minUnix)
		now := time.Unix(unix, 0).UTC()
		start, next := p.start(now), p.next(now)
		if p == PeriodNone {
			if start != 0 || !next.IsZero() {
				t.Fatalf("none: start %d, next %v", start, next)
			}
			return
		}
		s := time.Unix(start, 0).UTC()
		if start > unix || !next.After(now) {
			t.Fatalf("%v at %v: window [%v, %v) misses it", p, now, s, next)
		}
		if s.Hour() != 0 || s.Minute() != 0 || s.Second() != 0 {
			t.Fatalf("%v at %v starts at %v, not midnight", p, now, s)
		}
		switch p {
		case PeriodWeekly:
			if s.Weekday() != time.Monday {
				t.Fatalf("week of %v starts on %v", now, s.Weekday())
			}
		case PeriodMonthly:
			if s.Day() != 1 || s.Month() != now.Month() || s.Year() != now.Year() {
				t.Fatalf("month of %v starts on %v", now, s)
			}
		}
		if p.start(next.Add(-time.Second)) != start || p.start(next) != next.Unix() {
			t.Fatalf("%v at %v: next %v is not the end of the window", p, now, next)
		}
	})
}

// FuzzGlob checks ACL glob matching against a regular expression built
// from the same pattern, where `*` is `.*` and everything else is literal.
func FuzzGlob(f *testing.F) {
	f.Add("weather__*", "weather__forecast")
	f.Add("gpt-4.1*", "gpt-4.1-mini")
	f.Add("*", "")
	f.Add("a*b*a", "aba")
	f.Add("a*a", "a")
	f.Add("openai/*-mini*", "openai/gpt-4o-mini-2024")
	f.Add("x**y", "xy")
	f.Add("exact", "Exact")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(name) {
			// regexp reads invalid bytes as U+FFFD; the glob compares bytes.
			return
		}
		g := compileGlob(pattern, "rule")
		parts := strings.Split(pattern, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile(`(?s)\A` + strings.Join(parts, `.*`) + `\z`)
		if got, want := g.match(name), re.MatchString(name); got != want {
			t.Fatalf("glob %q on %q: %v, want %v", pattern, name, got, want)
		}
		l := compileList([]string{pattern}, "key.allow.tools")
		if _, ok := l.match(name); ok != re.MatchString(name) {
			t.Fatalf("list [%q] on %q: %v", pattern, name, ok)
		}
	})
}
