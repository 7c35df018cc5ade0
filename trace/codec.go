package trace

import (
	"encoding/binary"
	"errors"
	"time"
)

// Spill records hold a batch of spans in this compact binary form. The
// leading version byte lets a newer binary read segments an older one left.
const codecVersion = 1

var errCodec = errors.New("trace: malformed span batch")

func appendSpans(b []byte, spans []Span) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(len(spans)))
	for i := range spans {
		b = appendSpan(b, &spans[i])
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendSpan(b []byte, s *Span) []byte {
	b = append(b, s.TraceID[:]...)
	b = append(b, s.SpanID[:]...)
	b = append(b, s.ParentSpanID[:]...)
	b = appendString(b, string(s.Layer))
	b = appendString(b, s.Name)
	b = binary.AppendVarint(b, s.Start.UnixNano())
	b = binary.AppendVarint(b, int64(s.Duration))
	b = appendString(b, string(s.Status))
	b = binary.AppendVarint(b, int64(s.HTTPStatus))
	for _, str := range [...]string{s.Error, s.KeyID, s.KeyName, s.Team, s.Org, s.Model, s.Provider, s.Deployment, s.ToolServer, s.Tool, s.Agent} {
		b = appendString(b, str)
	}
	for _, n := range [...]int64{s.InputTokens, s.OutputTokens, s.CachedTokens, s.CostNanoUSD, int64(s.Retries), int64(s.Fallbacks), int64(s.TTFT)} {
		b = binary.AppendVarint(b, n)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Attrs)))
	for _, a := range s.Attrs {
		b = appendString(b, a.Key)
		b = appendString(b, a.Value)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCodec
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCodec
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func decodeSpans(b []byte) ([]Span, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errCodec
	}
	d := &decoder{b: b[1:]}
	n := d.uvarint()
	// Every span takes at least 32 bytes; a larger count is corrupt and
	// must not drive the allocation below.
	if n > uint64(len(d.b))/32 {
		return nil, errCodec
	}
	spans := make([]Span, n)
	for i := range spans {
		s := &spans[i]
		copy(s.TraceID[:], d.bytes(16))
		copy(s.SpanID[:], d.bytes(8))
		copy(s.ParentSpanID[:], d.bytes(8))
		s.Layer = Layer(d.string())
		s.Name = d.string()
		s.Start = time.Unix(0, d.varint()).UTC()
		s.Duration = time.Duration(d.varint())
		s.Status = Status(d.string())
		s.HTTPStatus = int(d.varint())
		for _, p := range [...]*string{&s.Error, &s.KeyID, &s.KeyName, &s.Team, &s.Org, &s.Model, &s.Provider, &s.Deployment, &s.ToolServer, &s.Tool, &s.Agent} {
			*p = d.string()
		}
		s.InputTokens, s.OutputTokens, s.CachedTokens, s.CostNanoUSD = d.varint(), d.varint(), d.varint(), d.varint()
		s.Retries, s.Fallbacks, s.TTFT = int32(d.varint()), int32(d.varint()), time.Duration(d.varint())
		na := d.uvarint()
		if na > uint64(len(d.b))/2 {
			return nil, errCodec
		}
		if na > 0 {
			s.Attrs = make([]Attr, na)
			for j := range s.Attrs {
				s.Attrs[j] = Attr{Key: d.string(), Value: d.string()}
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.b) != 0 {
		return nil, errCodec
	}
	return spans, nil
}
