package grafana

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// fill expands a panel's rawSql the way Grafana and the ClickHouse plugin
// would for one fixed time range, interval and set of variable values:
// first the plugin's $__conditionalAll (front end), then template variables
// (Grafana), then the plugin's back-end macros. Anything left starting with
// `$` is an error, so a dashboard cannot use a macro this test does not know.
type fill struct {
	from, to time.Time
	interval time.Duration
	// vars holds the values each variable expands to; a variable in all is
	// set to All (the plugin's $__all), and expands to all its options.
	vars map[string][]string
	all  map[string]bool
}

const conditionalAll = "$__conditionalAll("

var (
	variableRef = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\$(\w+)`)
	macroRef    = regexp.MustCompile(`\$__(\w+)`)
)

func (f fill) expand(sql string) (string, error) {
	sql, err := f.conditionalAlls(sql)
	if err != nil {
		return "", err
	}
	if sql, err = f.variables(sql); err != nil {
		return "", err
	}
	if sql, err = f.macros(sql); err != nil {
		return "", err
	}
	if i := strings.IndexByte(sql, '$'); i >= 0 {
		return "", fmt.Errorf("unfilled %q left in the query", sql[i:min(len(sql), i+24)])
	}
	return sql, nil
}

// conditionalAlls mirrors the plugin's applyConditionalAll: the condition
// stays unless its variable is All or empty, when it becomes 1=1. Like the
// plugin it works from the last occurrence backwards so nested uses expand.
func (f fill) conditionalAlls(sql string) (string, error) {
	for {
		i := strings.LastIndex(sql, conditionalAll)
		if i < 0 {
			return sql, nil
		}
		args, end, err := macroArgs(sql, i+len(conditionalAll)-1)
		if err != nil {
			return "", fmt.Errorf("$__conditionalAll: %w", err)
		}
		if len(args) != 2 {
			return "", fmt.Errorf("$__conditionalAll takes 2 arguments, got %d", len(args))
		}
		m := variableRef.FindStringSubmatch(strings.TrimSpace(args[1]))
		if m == nil {
			return "", fmt.Errorf("$__conditionalAll: second argument %q is not a variable", args[1])
		}
		name := m[1] + m[3]
		vals, known := f.vars[name]
		if !known {
			return "", fmt.Errorf("$__conditionalAll: unknown variable %q", name)
		}
		phrase := args[0]
		if f.all[name] || len(vals) == 0 || (len(vals) == 1 && vals[0] == "") {
			phrase = "1=1"
		}
		sql = sql[:i] + phrase + sql[end:]
	}
}

// macroArgs splits the parenthesised argument list starting at open (the
// index of "(") on top-level commas and returns the index just past ")".
func macroArgs(s string, open int) ([]string, int, error) {
	depth, start := 0, open+1
	var args []string
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return append(args, s[start:i]), i + 1, nil
			}
		case ',':
			if depth == 1 {
				args = append(args, s[start:i])
				start = i + 1
			}
		}
	}
	return nil, 0, errors.New("unbalanced parentheses")
}

// variables substitutes template variables with the formats the dashboards
// use. Names starting with "__" are Grafana's or the plugin's and are left
// for macros.
func (f fill) variables(sql string) (string, error) {
	var err error
	out := variableRef.ReplaceAllStringFunc(sql, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name, format := m[1]+m[3], m[2]
		if strings.HasPrefix(name, "__") {
			return ref
		}
		vals, known := f.vars[name]
		if !known {
			err = errors.Join(err, fmt.Errorf("unknown variable %q", name))
			return ref
		}
		switch format {
		case "":
			// The plugin's own formatter: several values become a quoted
			// list, one value goes in as it is.
			if len(vals) == 1 {
				return vals[0]
			}
			return quoteList(vals)
		case "singlequote":
			return quoteList(vals)
		case "raw":
			return strings.Join(vals, ",")
		}
		err = errors.Join(err, fmt.Errorf("variable %q: format %q is not one this test knows", name, format))
		return ref
	})
	return out, err
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", `\'`) + "'"
	}
	return strings.Join(q, ",")
}

// macros expands the plugin's back-end macros exactly as its
// pkg/macros does (grafana-clickhouse-datasource v4).
func (f fill) macros(sql string) (string, error) {
	var b strings.Builder
	for {
		loc := macroRef.FindStringSubmatchIndex(sql)
		if loc == nil {
			b.WriteString(sql)
			return b.String(), nil
		}
		name := sql[loc[2]:loc[3]]
		rest := loc[1]
		var args []string
		if rest < len(sql) && sql[rest] == '(' {
			a, end, err := macroArgs(sql, rest)
			if err != nil {
				return "", fmt.Errorf("$__%s: %w", name, err)
			}
			for _, s := range a {
				args = append(args, strings.TrimSpace(s))
			}
			rest = end
		}
		exp, err := f.macro(name, args)
		if err != nil {
			return "", err
		}
		b.WriteString(sql[:loc[0]])
		b.WriteString(exp)
		sql = sql[rest:]
	}
}

func (f fill) macro(name string, args []string) (string, error) {
	want := map[string]int{
		"fromTime": 0, "toTime": 0, "fromTime_ms": 0, "toTime_ms": 0, "interval_s": 0,
		"timeFilter": 1, "timeFilter_ms": 1, "dateFilter": 1, "timeInterval": 1, "timeInterval_ms": 1,
		"dateTimeFilter": 2, "dt": 2,
	}
	n, ok := want[name]
	if !ok {
		return "", fmt.Errorf("unknown macro $__%s", name)
	}
	if len(args) != n {
		return "", fmt.Errorf("$__%s takes %d arguments, got %d", name, n, len(args))
	}
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	date := func(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }
	seconds := max(int64(f.interval/time.Second), 1)
	switch name {
	case "fromTime":
		return dt(f.from), nil
	case "toTime":
		return dt(f.to), nil
	case "fromTime_ms":
		return dt64(f.from), nil
	case "toTime_ms":
		return dt64(f.to), nil
	case "interval_s":
		return strconv.FormatInt(seconds, 10), nil
	case "timeFilter":
		return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], dt(f.from), args[0], dt(f.to)), nil
	case "timeFilter_ms":
		return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], dt64(f.from), args[0], dt64(f.to)), nil
	case "dateFilter":
		return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], date(f.from), args[0], date(f.to)), nil
	case "timeInterval":
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", args[0], seconds), nil
	case "timeInterval_ms":
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", args[0],
			max(f.interval.Milliseconds(), 1)), nil
	}
	// dateTimeFilter and its alias dt.
	return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
		args[0], date(f.from), args[0], date(f.to), args[1], dt(f.from), args[1], dt(f.to)), nil
}
