// Package codec encodes the frames the bridge sends to filterd (Hello, FilterRequest) and
// decodes, with full bounds checking, the frames it receives (HelloAck, FilterResponse, Error).
//
// Framing (docs/protocol.md): a 4-byte big-endian length N, then N bytes holding one finished
// FlatBuffers buffer whose root is Frame and whose file identifier is "SPF1".
package codec

import (
	"encoding/binary"
	"errors"
	"slices"

	flatbuffers "github.com/google/flatbuffers/go"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// ProtocolVersion is the only protocol version this client speaks.
const ProtocolVersion = 1

// CapFilterTimings asks the daemon for per-filter outcomes and timings.
const CapFilterTimings uint64 = 1

var fileIdentifier = []byte(FileIdentifier)

// ErrPrefix means the builder could not place the length prefix without padding; it is an
// internal invariant and is reported rather than trusted.
var ErrPrefix = errors.New("codec: length prefix could not be placed")

// Request is what one FilterRequest frame carries. The maps are read, never written.
type Request struct {
	ID         uint64
	BudgetUS   uint32
	Route      string
	Filters    []string
	Method     string
	Path       string
	Query      map[string][]string // percent-decoded; sent sorted by name, values in order
	Headers    map[string][]string // sent sorted by name, values in order
	ClientIP   string
	Body       []byte
	PathParams map[string]string // sent sorted by name
}

// Encoder builds frames. It keeps its flatbuffers.Builder and scratch slices between uses, so
// a pooled Encoder encodes a request without allocating once it has warmed up. An Encoder is
// not safe for concurrent use, and a returned frame is valid until the next call.
type Encoder struct {
	b    *flatbuffers.Builder
	offs []flatbuffers.UOffsetT
	keys []string
}

// NewEncoder returns an Encoder whose builder starts with room for size bytes.
func NewEncoder(size int) *Encoder {
	return &Encoder{b: flatbuffers.NewBuilder(size), offs: make([]flatbuffers.UOffsetT, 0, 64), keys: make([]string, 0, 32)}
}

// Cap is the capacity of the builder's buffer, so that pools can drop encoders that grew big.
func (e *Encoder) Cap() int { return cap(e.b.Bytes) }

// Hello encodes the opening frame of a connection.
func (e *Encoder) Hello(maxFrameBytes uint32, clientName string) ([]byte, error) {
	b := e.b
	b.Reset()
	name := b.CreateString(clientName)
	wire.HelloStart(b)
	wire.HelloAddVersionMin(b, ProtocolVersion)
	wire.HelloAddVersionMax(b, ProtocolVersion)
	wire.HelloAddMaxFrameBytes(b, maxFrameBytes)
	wire.HelloAddCapabilities(b, CapFilterTimings)
	wire.HelloAddClientName(b, name)
	return e.finish(wire.BodyHello, wire.HelloEnd(b))
}

// FilterRequest encodes r as one length-prefixed frame.
func (e *Encoder) FilterRequest(r *Request) ([]byte, error) {
	b := e.b
	b.Reset()
	e.offs = e.offs[:0]

	route := b.CreateString(r.Route)
	filters := e.stringVector(r.Filters)
	method := b.CreateString(r.Method)
	path := b.CreateString(r.Path)
	query := e.queryPairs(r.Query)
	headers := e.headers(r.Headers)
	clientIP := b.CreateString(r.ClientIP)
	var body flatbuffers.UOffsetT
	if len(r.Body) > 0 {
		body = b.CreateByteVector(r.Body)
	}
	params := e.pathParams(r.PathParams)

	wire.FilterRequestStart(b)
	wire.FilterRequestAddId(b, r.ID)
	wire.FilterRequestAddBudgetUs(b, r.BudgetUS)
	wire.FilterRequestAddRoute(b, route)
	wire.FilterRequestAddFilters(b, filters)
	wire.FilterRequestAddMethod(b, method)
	wire.FilterRequestAddPath(b, path)
	wire.FilterRequestAddQuery(b, query)
	wire.FilterRequestAddHeaders(b, headers)
	wire.FilterRequestAddClientIp(b, clientIP)
	if body != 0 {
		wire.FilterRequestAddBody(b, body)
	}
	wire.FilterRequestAddPathParams(b, params)
	return e.finish(wire.BodyFilterRequest, wire.FilterRequestEnd(b))
}

// finish wraps body in a Frame, finishes the buffer with the file identifier and puts the
// big-endian length in front of it, inside the builder's own memory (no copy).
func (e *Encoder) finish(typ wire.Body, body flatbuffers.UOffsetT) ([]byte, error) {
	b := e.b
	wire.FrameStart(b)
	wire.FrameAddBodyType(b, typ)
	wire.FrameAddBody(b, body)
	b.FinishWithFileIdentifier(wire.FrameEnd(b), fileIdentifier)
	n := len(b.FinishedBytes())
	// The finished buffer's size is a multiple of its alignment (>= 4), so prepending 4 bytes
	// adds no padding; the check below keeps that an assertion, not an assumption.
	b.PrependUint32(0)
	out := b.Bytes[b.Head():]
	if len(out) != n+4 {
		return nil, ErrPrefix
	}
	binary.BigEndian.PutUint32(out, uint32(n))
	return out, nil
}

// vectorOf ends a vector of the offsets pushed on e.offs since mark and pops them.
func (e *Encoder) vectorOf(mark int) flatbuffers.UOffsetT {
	items := e.offs[mark:]
	e.b.StartVector(4, len(items), 4)
	for i := len(items) - 1; i >= 0; i-- {
		e.b.PrependUOffsetT(items[i])
	}
	e.offs = e.offs[:mark]
	return e.b.EndVector(len(items))
}

func (e *Encoder) stringVector(ss []string) flatbuffers.UOffsetT {
	mark := len(e.offs)
	for _, s := range ss {
		e.offs = append(e.offs, e.b.CreateString(s))
	}
	return e.vectorOf(mark)
}

// sortedKeys refills the encoder's reusable key slice with m's keys in byte order.
func sortedKeys[V any](dst []string, m map[string]V) []string {
	dst = dst[:0]
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// queryPair builds one QueryPair table (also used for path parameters).
func (e *Encoder) queryPair(k, v string) flatbuffers.UOffsetT {
	name := e.b.CreateString(k)
	value := e.b.CreateString(v)
	wire.QueryPairStart(e.b)
	wire.QueryPairAddName(e.b, name)
	wire.QueryPairAddValue(e.b, value)
	return wire.QueryPairEnd(e.b)
}

func (e *Encoder) queryPairs(q map[string][]string) flatbuffers.UOffsetT {
	e.keys = sortedKeys(e.keys, q)
	mark := len(e.offs)
	for _, k := range e.keys {
		for _, v := range q[k] {
			e.offs = append(e.offs, e.queryPair(k, v))
		}
	}
	return e.vectorOf(mark)
}

func (e *Encoder) pathParams(p map[string]string) flatbuffers.UOffsetT {
	e.keys = sortedKeys(e.keys, p)
	mark := len(e.offs)
	for _, k := range e.keys {
		e.offs = append(e.offs, e.queryPair(k, p[k]))
	}
	return e.vectorOf(mark)
}

func (e *Encoder) headers(h map[string][]string) flatbuffers.UOffsetT {
	e.keys = sortedKeys(e.keys, h)
	mark := len(e.offs)
	for _, k := range e.keys {
		name := e.b.CreateString(k)
		values := e.stringVector(h[k])
		wire.HeaderStart(e.b)
		wire.HeaderAddName(e.b, name)
		wire.HeaderAddValues(e.b, values)
		e.offs = append(e.offs, wire.HeaderEnd(e.b))
	}
	return e.vectorOf(mark)
}
