package app

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

const maxRequestIDLen = 128

// requestID keeps a caller's well-formed X-Request-ID (so ids follow a request across services) and makes one
// otherwise; a malformed or huge id is replaced rather than echoed.
func requestID(c *fiber.Ctx) error {
	setRequestID(c)
	return c.Next()
}

// setRequestID answers with the client's X-Request-ID when it is usable,
// else with a new one.
func setRequestID(c *fiber.Ctx) {
	if id := c.Request().Header.Peek(fiber.HeaderXRequestID); validRequestID(id) {
		c.Response().Header.SetCanonical(headerRequestID, id)
	} else {
		var buf [36]byte
		c.Response().Header.SetCanonical(headerRequestID, appendRequestID(buf[:0]))
	}
}

// headerRequestID is X-Request-ID as fasthttp writes header names, so setting it skips their normalizing.
var headerRequestID = []byte("X-Request-Id")

// appendRequestID appends a version 4 UUID made from math/rand/v2's
// per-thread generator rather than crypto/rand: a request id must be
// unique, not unguessable, and crypto/rand was 2% of the gateway's CPU at
// saturation.
func appendRequestID(dst []byte) []byte {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return append(dst, out[:]...)
}

func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == ':') {
			return false
		}
	}
	return true
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// series caches each httpSeriesKey's series: one map read per request
	// instead of two lookups by label values.
	series sync.Map
}

type httpSeriesKey struct {
	method, route string
	status        int
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesFor is the series of a request. Its keys are as bounded as the labels themselves: constant methods,
// registered route patterns and status codes.
func (m *httpMetrics) seriesFor(k httpSeriesKey) httpSeries {
	if s, ok := m.series.Load(k); ok {
		return s.(httpSeries)
	}
	s := httpSeries{m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)), m.duration.WithLabelValues(k.method, k.route)}
	m.series.Store(k, s)
	return s
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_http_requests_total", Help: "HTTP requests answered, by route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_http_request_duration_seconds",
			Help:    "Time from request to handler return (for streams: until the stream was handed off).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_http_in_flight_requests", Help: "Requests being handled now.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

func (m *httpMetrics) middleware(c *fiber.Ctx) error {
	start := time.Now()
	m.inFlight.Inc()
	err := c.Next()
	m.inFlight.Dec()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; record the status it will answer.
		status = fiber.StatusInternalServerError
		if fe, ok := err.(*fiber.Error); ok {
			status = fe.Code
		}
	}
	// The route pattern, not the path: raw paths would give one series per URL an attacker invents.
	route := c.Route().Path
	if status == fiber.StatusNotFound {
		route = "unmatched"
	}
	series := m.seriesFor(httpSeriesKey{methodLabel(c.Method()), route, status})
	series.requests.Inc()
	series.duration.Observe(time.Since(start).Seconds())
	return err
}

// methodLabel maps a request method to a constant: fiber hands the method out as a view into fasthttp's reused
// read buffer, so a label made from it would change under a new series (and race with the parser), and a
// client could mint one series per invented method.
func methodLabel(method string) string {
	for _, known := range knownMethods {
		if method == known {
			return known
		}
	}
	return "other"
}

var knownMethods = [...]string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
	fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace}
