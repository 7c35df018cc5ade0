package llm

import (
	"encoding/binary"
	"math/bits"
)

// maxNestingDepth is encoding/json's limit: deeper documents are invalid.
const maxNestingDepth = 10000

// validJSON reports whether b holds one JSON value, with optional whitespace
// around it, exactly as json.Valid does: RFC 8259's grammar, no check of
// UTF-8, nesting at most maxNestingDepth deep.
//
// json.Valid runs a state machine call per byte, about 210 MB/s here: a
// 50 KB prompt cost 240 µs to check before the gateway even looked at it.
// Prompts are mostly string bytes, which this skips eight at a time.
func validJSON(b []byte) bool {
	var buf [64]byte
	open := buf[:0] // the '{' and '[' enclosing i
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(open) == maxNestingDepth {
				return false
			}
			open = append(open, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' and ']' follow '{' and '[' by two
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = validMemberStart(b, i); i < 0 {
					return false
				}
			}
			continue
		case '"':
			if i = validString(b, i); i < 0 {
				return false
			}
		case 't':
			if i = literal(b, i, "true"); i < 0 {
				return false
			}
		case 'f':
			if i = literal(b, i, "false"); i < 0 {
				return false
			}
		case 'n':
			if i = literal(b, i, "null"); i < 0 {
				return false
			}
		default:
			if i = validNumber(b, i); i < 0 {
				return false
			}
		}
		// A value ended at i: close the containers it completes, then a
		// comma leads to the next value.
		for {
			i = skipSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i = validMemberStart(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// validMemberStart checks `"key" :` at i and returns where the member's
// value starts, or -1.
func validMemberStart(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validString(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// validString checks the string starting at b[i] == '"' and returns the
// index after it, or -1.
func validString(b []byte, i int) int {
	for i++; ; {
		i = nextStringSpecial(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// Word-at-a-time byte tests (Hacker's Delight 6-1): a byte of x is zero,
// or below 0x20, exactly when the matching high bit of the result is set,
// counting from the lowest byte up to the first match.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func zeroBytes(x uint64) uint64    { return (x - ones) &^ x & highs }
func controlBytes(x uint64) uint64 { return (x - 0x20*ones) &^ x & highs }
func stringSpecials(x uint64) uint64 {
	return zeroBytes(x^'"'*ones) | zeroBytes(x^'\\'*ones) | controlBytes(x)
}

// nextStringSpecial returns the index of the first '"', '\\' or control
// character at or after i, or len(b).
func nextStringSpecial(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := stringSpecials(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i and
// returns the index after it, or -1.
func validNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(b, i+1); b[i-1] == '.' {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = digits(b, i); i == start {
			return -1
		}
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
