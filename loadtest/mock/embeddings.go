package mock

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// embeddingInput is one item of an embeddings request: text or token ids,
// reduced to the bytes that seed its vector and its token count.
type embeddingInput struct {
	seed   string
	tokens int
}

var errBadInput = errors.New("bad embeddings input")

// embeddingInputs accepts the four shapes OpenAI does: a string, an array of
// strings, an array of token ids, an array of token-id arrays.
func embeddingInputs(raw json.RawMessage) ([]embeddingInput, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []embeddingInput{{seed: one, tokens: countTokens(one)}}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		out := make([]embeddingInput, len(many))
		for i, s := range many {
			out[i] = embeddingInput{seed: s, tokens: countTokens(s)}
		}
		return out, nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return []embeddingInput{tokenInput(ids)}, nil
	}
	var idLists [][]int64
	if json.Unmarshal(raw, &idLists) == nil && len(idLists) > 0 {
		out := make([]embeddingInput, len(idLists))
		for i, l := range idLists {
			if len(l) == 0 {
				return nil, errBadInput
			}
			out[i] = tokenInput(l)
		}
		return out, nil
	}
	return nil, errBadInput
}

func tokenInput(ids []int64) embeddingInput {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return embeddingInput{seed: strings.Join(parts, ","), tokens: len(ids)}
}

func defaultDimensions(model string) int {
	if strings.Contains(model, "3-large") {
		return 3072
	}
	return 1536
}

// vector derives a unit-length vector from the input alone, so equal inputs
// always embed equally.
func vector(seed string, dims int) []float32 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	state := h.Sum64()
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		// splitmix64: cheap, well-mixed, deterministic.
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(z>>11)/float64(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	if norm > 0 {
		scale := float32(1 / math.Sqrt(norm))
		for i := range v {
			v[i] *= scale
		}
	}
	return v
}

func embeddingsJSON(model string, inputs []embeddingInput, dims int, asBase64 bool) []byte {
	size := 128 + len(inputs)*(64+dims*12)
	if asBase64 {
		size = 128 + len(inputs)*(64+dims*6)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"object":"list","data":[`...)
	tokens := 0
	raw := make([]byte, dims*4)
	for i, in := range inputs {
		tokens += in.tokens
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		v := vector(in.seed, dims)
		if asBase64 {
			// The base64 form is the little-endian float32 array, as OpenAI sends it.
			for j, f := range v {
				binary.LittleEndian.PutUint32(raw[j*4:], math.Float32bits(f))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, f := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	return append(b, "}}"...)
}
