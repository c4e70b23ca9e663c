package main

import (
	flatbuffers "github.com/google/flatbuffers/go"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// The encoders in this file build the frames the daemon sends, for test peers, the fuzz seed
// corpus and benchmarks. They are test code: the plugin never sends these frames.

const (
	VerdictDeny  uint8 = 0
	VerdictAllow uint8 = 1
)

// Header is one header name with all of its values.
type Header struct {
	Name   string
	Values []string
}

// FilterResult is one entry of FilterResponse.filters.
type FilterResult struct {
	Name      string
	Outcome   uint8
	ElapsedNs uint32
}

// Response describes a FilterResponse frame.
type Response struct {
	ID              uint64
	Verdict         uint8
	Status          uint16
	DenyHeaders     []Header
	DenyBody        []byte
	DenyContentType string
	SetHeaders      []Header
	RemoveHeaders   []string
	Filters         []FilterResult
}

// FilterResponse encodes r as one length-prefixed frame.
func (e *encoder) FilterResponse(r *Response) ([]byte, error) {
	b := e.b
	b.Reset()
	e.offs = e.offs[:0]
	deny := e.headerList(r.DenyHeaders)
	var body, ct flatbuffers.UOffsetT
	if r.DenyBody != nil {
		body = b.CreateByteVector(r.DenyBody)
	}
	if r.DenyContentType != "" {
		ct = b.CreateString(r.DenyContentType)
	}
	set := e.headerList(r.SetHeaders)
	mark := len(e.offs)
	for _, s := range r.RemoveHeaders {
		e.offs = append(e.offs, b.CreateString(s))
	}
	remove := e.vectorOf(mark)
	mark = len(e.offs)
	for _, f := range r.Filters {
		name := b.CreateString(f.Name)
		wire.FilterResultStart(b)
		wire.FilterResultAddName(b, name)
		wire.FilterResultAddOutcome(b, wire.FilterOutcome(f.Outcome))
		wire.FilterResultAddElapsedNs(b, f.ElapsedNs)
		e.offs = append(e.offs, wire.FilterResultEnd(b))
	}
	filters := e.vectorOf(mark)

	wire.FilterResponseStart(b)
	wire.FilterResponseAddId(b, r.ID)
	wire.FilterResponseAddVerdict(b, wire.Verdict(r.Verdict))
	wire.FilterResponseAddStatus(b, r.Status)
	wire.FilterResponseAddDenyHeaders(b, deny)
	if body != 0 {
		wire.FilterResponseAddDenyBody(b, body)
	}
	if ct != 0 {
		wire.FilterResponseAddDenyContentType(b, ct)
	}
	wire.FilterResponseAddSetHeaders(b, set)
	wire.FilterResponseAddRemoveHeaders(b, remove)
	wire.FilterResponseAddFilters(b, filters)
	return e.finish(wire.BodyFilterResponse, wire.FilterResponseEnd(b)), nil
}

// Error encodes an Error frame.
func (e *encoder) Error(id uint64, code uint16, message string) ([]byte, error) {
	b := e.b
	b.Reset()
	msg := b.CreateString(message)
	wire.ErrorStart(b)
	wire.ErrorAddId(b, id)
	wire.ErrorAddCode(b, wire.ErrorCode(code))
	wire.ErrorAddMessage(b, msg)
	return e.finish(wire.BodyError, wire.ErrorEnd(b)), nil
}

// HelloAck encodes a HelloAck frame.
func (e *encoder) HelloAck(version uint16, maxFrameBytes uint32, capabilities uint64, serverName string, maxInFlight uint32) ([]byte, error) {
	b := e.b
	b.Reset()
	name := b.CreateString(serverName)
	wire.HelloAckStart(b)
	wire.HelloAckAddVersion(b, version)
	wire.HelloAckAddMaxFrameBytes(b, maxFrameBytes)
	wire.HelloAckAddCapabilities(b, capabilities)
	wire.HelloAckAddServerName(b, name)
	wire.HelloAckAddMaxInFlight(b, maxInFlight)
	return e.finish(wire.BodyHelloAck, wire.HelloAckEnd(b)), nil
}

func (e *encoder) headerList(hs []Header) flatbuffers.UOffsetT {
	mark := len(e.offs)
	for _, h := range hs {
		name := e.b.CreateString(h.Name)
		m := len(e.offs)
		for _, v := range h.Values {
			e.offs = append(e.offs, e.b.CreateString(v))
		}
		values := e.vectorOf(m)
		wire.HeaderStart(e.b)
		wire.HeaderAddName(e.b, name)
		wire.HeaderAddValues(e.b, values)
		e.offs = append(e.offs, wire.HeaderEnd(e.b))
	}
	return e.vectorOf(mark)
}
