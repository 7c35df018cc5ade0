package governance

import (
	"fmt"
	"strings"
	"time"
)

// Period is a budget window. Calendar periods start at 00:00 UTC (weeks on Monday).
type Period uint8

const (
	PeriodNone Period = iota
	PeriodDaily
	PeriodWeekly
	PeriodMonthly
)

func (p Period) String() string {
	switch p {
	case PeriodDaily:
		return "daily"
	case PeriodWeekly:
		return "weekly"
	case PeriodMonthly:
		return "monthly"
	}
	return "none"
}

func parsePeriod(s string) (Period, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return PeriodNone, nil
	case "daily", "day", "1d", "24h":
		return PeriodDaily, nil
	case "weekly", "week", "7d", "1w":
		return PeriodWeekly, nil
	case "monthly", "month", "30d", "1mo":
		return PeriodMonthly, nil
	}
	return PeriodNone, fmt.Errorf("want daily, weekly, monthly or none, got %q", s)
}

const daySeconds = 24 * 60 * 60

// start is the Unix second at which the period containing now began; 0 for none.
func (p Period) start(now time.Time) int64 {
	u := now.Unix()
	switch p {
	case PeriodDaily:
		return u - mod(u, daySeconds)
	case PeriodWeekly:
		day := (u - mod(u, daySeconds)) / daySeconds
		// 1970-01-01 was a Thursday: day 4 (Monday) is 0 mod 7 after shifting by 3.
		return (day - mod(day+3, 7)) * daySeconds
	case PeriodMonthly:
		t := now.UTC()
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	return 0
}

// next is when the period containing now ends; zero for none.
func (p Period) next(now time.Time) time.Time {
	s := time.Unix(p.start(now), 0).UTC()
	switch p {
	case PeriodDaily:
		return s.AddDate(0, 0, 1)
	case PeriodWeekly:
		return s.AddDate(0, 0, 7)
	case PeriodMonthly:
		return s.AddDate(0, 1, 0)
	}
	return time.Time{}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
