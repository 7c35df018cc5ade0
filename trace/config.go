package trace

import (
	"errors"
	"fmt"
	"time"
)

// RecorderConfig tunes the span recorder; it is the top-level `trace:` YAML
// block. Zero values take the defaults below.
type RecorderConfig struct {
	// QueueSize bounds the in-memory queue (spans, roughly 450 bytes each;
	// memory is taken up to 5000 spans at a time as the queue fills, and
	// kept). Default 40000.
	QueueSize int `yaml:"queue_size" mapstructure:"queue_size"`
	// BatchSize is the most spans per write; a write starts as soon as this
	// many are queued. Default 20000, or half of QueueSize if that is less:
	// every ClickHouse insert makes new parts (spans and its rollups) at a
	// fixed cost of tens of milliseconds of server CPU, so at high rates
	// fewer, larger inserts halve ClickHouse's CPU per span. At most
	// 1,000,000, below the rows ClickHouse gathers before it writes a part,
	// so that a failed write leaves nothing behind.
	BatchSize int `yaml:"batch_size" mapstructure:"batch_size"`
	// FlushInterval is the longest a queued span waits for a write. Default
	// 1s; the gateway makes it 5s for ClickHouse (storage.Config.SpanFlushInterval).
	FlushInterval time.Duration `yaml:"flush_interval" mapstructure:"flush_interval"`
	// WriteTimeout bounds one write to the sink. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout" mapstructure:"write_timeout"`
	// SpillDir holds spill segments while the sink is down. Default "data/trace-spill".
	SpillDir string `yaml:"spill_dir" mapstructure:"spill_dir"`
	// SpillSegmentBytes is the size after which a spill segment is sealed
	// and a new one started. Default 64 MiB.
	SpillSegmentBytes int64 `yaml:"spill_segment_bytes" mapstructure:"spill_segment_bytes"`
	// RetryInterval is the pause between replay attempts while the sink
	// keeps failing. Default 2s.
	RetryInterval time.Duration `yaml:"retry_interval" mapstructure:"retry_interval"`
	// OTLP also sends every span to an OpenTelemetry collector; nil exports nothing.
	OTLP *OTLPConfig `yaml:"otlp" mapstructure:"otlp"`
}

// Config is the `trace:` block of the gateway's YAML.
type Config = RecorderConfig

// Defaults used for zero fields.
const (
	DefaultQueueSize         = 40000
	DefaultBatchSize         = 20000
	MaxBatchSize             = 1_000_000
	DefaultFlushInterval     = time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultSpillDir          = "data/trace-spill"
	DefaultSpillSegmentBytes = 64 << 20
	DefaultRetryInterval     = 2 * time.Second
)

// Validate checks the fields a user wrote; zero fields are fine (defaults).
func (c RecorderConfig) Validate() error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, fmt.Errorf("trace.%s: %s", field, msg)) }
	if c.QueueSize < 0 {
		bad("queue_size", "must not be negative")
	}
	if c.BatchSize < 0 {
		bad("batch_size", "must not be negative")
	}
	if c.QueueSize > 0 && c.BatchSize > c.QueueSize {
		bad("batch_size", "must not exceed queue_size")
	}
	if c.BatchSize > MaxBatchSize {
		bad("batch_size", fmt.Sprintf("must be at most %d", MaxBatchSize))
	}
	if c.FlushInterval < 0 {
		bad("flush_interval", "must not be negative")
	}
	if c.WriteTimeout < 0 {
		bad("write_timeout", "must not be negative")
	}
	if c.SpillSegmentBytes < 0 {
		bad("spill_segment_bytes", "must not be negative")
	} else if c.SpillSegmentBytes > 0 && c.SpillSegmentBytes < 4096 {
		bad("spill_segment_bytes", "must be at least 4096")
	}
	if c.RetryInterval < 0 {
		bad("retry_interval", "must not be negative")
	}
	if c.OTLP != nil {
		c.OTLP.validate(bad)
	}
	return errors.Join(errs...)
}

func (c RecorderConfig) withDefaults() RecorderConfig {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize == 0 {
		// Half the queue at most, so that spans arriving during a write
		// find room rather than the spill.
		c.BatchSize = max(1, min(DefaultBatchSize, c.QueueSize/2))
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.SpillDir == "" {
		c.SpillDir = DefaultSpillDir
	}
	if c.SpillSegmentBytes == 0 {
		c.SpillSegmentBytes = DefaultSpillSegmentBytes
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	return c
}
