package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os/exec"
	"slices"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// unframe strips and checks the 4-byte big-endian length prefix.
func unframe(t testing.TB, b []byte) []byte {
	t.Helper()
	if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		t.Fatalf("bad length prefix on a %d-byte frame", len(b))
	}
	return bytes.Clone(b[4:])
}

func fullResponse() *Response {
	return &Response{
		ID: 42, Verdict: VerdictDeny, Status: 429,
		DenyHeaders:     []Header{{Name: "Retry-After", Values: []string{"7"}}, {Name: "X-Multi", Values: []string{"a", "b"}}},
		DenyBody:        []byte(`{"status":429}`),
		DenyContentType: "application/problem+json",
		SetHeaders:      []Header{{Name: "X-Merchant-Id", Values: []string{"m-1"}}},
		RemoveHeaders:   []string{"X-Internal", "Cookie"},
		Filters:         []FilterResult{{Name: "merchant-auth", Outcome: 0, ElapsedNs: 1200}, {Name: "rate-limit", Outcome: 1, ElapsedNs: 800}},
	}
}

func TestDecodeFilterResponse(t *testing.T) {
	b, _ := newEncoder().FilterResponse(fullResponse())
	var r reply
	if err := decodeReply(unframe(t, b), &r); err != nil {
		t.Fatal(err)
	}
	if r.kind != wire.BodyFilterResponse || r.id != 42 || r.verdict != wire.VerdictDeny || r.status != 429 ||
		string(r.resp.DenyBodyBytes()) != `{"status":429}` || string(r.resp.DenyContentType()) != "application/problem+json" {
		t.Fatalf("decoded %+v", r)
	}
	d := (&bridge{cfg: &Config{ErrorStatus: 503}}).denyFrom(&r)
	if d.status != 429 || d.body != `{"status":429}` || d.encoding != "application/problem+json" ||
		len(d.headers) != 2 || d.headers["Retry-After"][0] != "7" || len(d.headers["X-Multi"]) != 2 || d.headers["X-Multi"][1] != "b" {
		t.Errorf("deny = %+v", d)
	}
	h := map[string][]string{"x-internal": {"1"}, "COOKIE": {"c"}, "x-merchant-id": {"forged"}, "Keep": {"k"}}
	applyHeaders(h, &r.resp)
	if len(h) != 2 || h["Keep"][0] != "k" || len(h["X-Merchant-Id"]) != 1 || h["X-Merchant-Id"][0] != "m-1" {
		t.Errorf("headers after apply = %v", h)
	}
}

func TestDecodeMinimalResponseDefaultsToDeny(t *testing.T) {
	b, _ := newEncoder().FilterResponse(&Response{ID: 1})
	var r reply
	if err := decodeReply(unframe(t, b), &r); err != nil {
		t.Fatal(err)
	}
	if r.verdict != wire.VerdictDeny || r.resp.DenyBodyBytes() != nil || r.resp.SetHeadersLength() != 0 {
		t.Errorf("decoded %+v", r)
	}
	d := (&bridge{cfg: &Config{ErrorStatus: 502}}).denyFrom(&r)
	if d.status != 502 || d.body != "" || d.headers != nil {
		t.Errorf("a deny without status = %+v", d)
	}
}

func TestDecodeErrorAndHelloAck(t *testing.T) {
	enc := newEncoder()
	b, _ := enc.Error(9, uint16(wire.ErrorCodeOverloaded), "busy")
	var r reply
	if err := decodeReply(unframe(t, b), &r); err != nil || r.kind != wire.BodyError || r.id != 9 || r.code.String() != "Overloaded" {
		t.Fatalf("error frame: %v %+v", err, r)
	}
	b, _ = enc.HelloAck(1, 65536, 1, "filterd", 128)
	if err := decodeReply(unframe(t, b), &r); err != nil || r.kind != wire.BodyHelloAck || r.ack.Version() != 1 ||
		r.ack.MaxFrameBytes() != 65536 || string(r.ack.ServerName()) != "filterd" {
		t.Fatalf("hello ack: %v %+v", err, r)
	}
}

func TestEncodeRequestIsReadableByGeneratedCode(t *testing.T) {
	digest := sha256.Sum256([]byte("hello"))
	req := &filterRequest{ID: 7, BudgetUS: 2500, Route: "payments", Filters: []string{"a", "b"}, Method: "GET",
		Path: "/p", Query: map[string][]string{"z": {"1"}, "a": {"2", "3"}}, Headers: map[string][]string{"B": {"1"}, "A": {"x", "y"}},
		ClientIP: "10.0.0.1", BodySHA256: digest[:], PathParams: map[string]string{"Id": "9", "Acct": "3"}}
	buf := unframe(t, newEncoder().filterRequest(req))
	if string(buf[4:8]) != fileIdentifier {
		t.Fatal("no SPF1 identifier")
	}
	f := wire.GetRootAsFrame(buf, 0)
	var tab flatbuffers.Table
	if f.BodyType() != wire.BodyFilterRequest || !f.Body(&tab) {
		t.Fatal("body type")
	}
	var r wire.FilterRequest
	r.Init(tab.Bytes, tab.Pos)
	if r.Id() != 7 || r.BudgetUs() != 2500 || string(r.Route()) != "payments" || string(r.Method()) != "GET" ||
		string(r.Path()) != "/p" || string(r.ClientIp()) != "10.0.0.1" || r.FiltersLength() != 2 || string(r.Filters(1)) != "b" {
		t.Fatal("scalar fields")
	}
	if r.BodyLength() != 0 || !bytes.Equal(r.BodySha256Bytes(), digest[:]) {
		t.Errorf("body %d bytes, digest %x: want no body and the 32-byte digest", r.BodyLength(), r.BodySha256Bytes())
	}
	var q wire.QueryPair
	got := ""
	for i := 0; i < r.QueryLength(); i++ {
		r.Query(&q, i)
		got += string(q.Name()) + "=" + string(q.Value()) + ";"
	}
	if got != "a=2;a=3;z=1;" {
		t.Errorf("query %q", got)
	}
	got = ""
	for i := 0; i < r.PathParamsLength(); i++ {
		r.PathParams(&q, i)
		got += string(q.Name()) + "=" + string(q.Value()) + ";"
	}
	if got != "Acct=3;Id=9;" {
		t.Errorf("params %q", got)
	}
	var h wire.Header
	r.Headers(&h, 0)
	if r.HeadersLength() != 2 || string(h.Name()) != "A" || h.ValuesLength() != 2 || string(h.Values(1)) != "y" {
		t.Errorf("headers")
	}
}

func TestEncodeHello(t *testing.T) {
	f := wire.GetRootAsFrame(unframe(t, newEncoder().hello()), 0)
	var tab flatbuffers.Table
	if f.BodyType() != wire.BodyHello || !f.Body(&tab) {
		t.Fatal("not a Hello")
	}
	var h wire.Hello
	h.Init(tab.Bytes, tab.Pos)
	if h.VersionMin() != 1 || h.VersionMax() != 1 || h.MaxFrameBytes() != 1<<20 || h.Capabilities() != 0 || string(h.ClientName()) != clientName {
		t.Error("hello fields")
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := newEncoder().FilterResponse(fullResponse())
	goodBuf := unframe(t, good)
	mutate := func(f func(b []byte)) []byte { b := bytes.Clone(goodBuf); f(b); return b }
	root := binary.LittleEndian.Uint32(goodBuf)
	cases := []struct {
		name string
		buf  []byte
		want error
	}{
		{"empty", nil, errShort},
		{"short", []byte{1, 2, 3, 4, 'S', 'P', 'F'}, errShort},
		{"identifier", mutate(func(b []byte) { b[4] = 'X' }), errShort},
		{"root offset past end", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b, uint32(len(b))) }), errBounds},
		{"root offset huge", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b, 0xfffffff0) }), errBounds},
		{"vtable outside", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[root:], 0x7fffffff) }), errBounds},
		{"vtable negative", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[root:], uint32(int32(-int32(len(b))))) }), errBounds},
		{"not a reply", unframe(t, newEncoder().hello()), errUnionType},
		{"no body", func() []byte {
			b := flatbuffers.NewBuilder(64)
			wire.FrameStart(b)
			b.FinishWithFileIdentifier(wire.FrameEnd(b), []byte("SPF1"))
			return b.FinishedBytes()
		}(), errUnionType},
		{"truncated", goodBuf[:len(goodBuf)/2], errBounds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r reply
			if err := decodeReply(c.buf, &r); err != c.want {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeRejectsUnsafeHeaders(t *testing.T) {
	cases := map[string]*Response{
		"CR in deny value":       {ID: 1, DenyHeaders: []Header{{Name: "X", Values: []string{"a\r\nSet-Cookie: x"}}}},
		"LF in set value":        {ID: 1, Verdict: VerdictAllow, SetHeaders: []Header{{Name: "X", Values: []string{"a\nb"}}}},
		"NUL in value":           {ID: 1, Verdict: VerdictAllow, SetHeaders: []Header{{Name: "X", Values: []string{"a\x00"}}}},
		"space in name":          {ID: 1, Verdict: VerdictAllow, SetHeaders: []Header{{Name: "X Y", Values: []string{"a"}}}},
		"empty name":             {ID: 1, Verdict: VerdictAllow, SetHeaders: []Header{{Name: "", Values: []string{"a"}}}},
		"non-ASCII name":         {ID: 1, DenyHeaders: []Header{{Name: "X-é", Values: []string{"a"}}}},
		"colon in remove":        {ID: 1, Verdict: VerdictAllow, RemoveHeaders: []string{"X:"}},
		"CR in content type":     {ID: 1, DenyContentType: "text/plain\r\nX: y"},
		"newline in remove name": {ID: 1, Verdict: VerdictAllow, RemoveHeaders: []string{"X\n"}},
	}
	for name, resp := range cases {
		t.Run(name, func(t *testing.T) {
			b, _ := newEncoder().FilterResponse(resp)
			var r reply
			if err := decodeReply(unframe(t, b), &r); err != errHeaderName && err != errHeaderValue {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// Many vector entries pointing at one shared header would make reading quadratic; the item
// bound stops it.
func TestDecodeItemBound(t *testing.T) {
	b := flatbuffers.NewBuilder(1 << 20)
	vals := make([]flatbuffers.UOffsetT, 300)
	for i := range vals {
		vals[i] = b.CreateString("v")
	}
	wire.HeaderStartValuesVector(b, len(vals))
	for i := len(vals) - 1; i >= 0; i-- {
		b.PrependUOffsetT(vals[i])
	}
	vv := b.EndVector(len(vals))
	name := b.CreateString("X")
	wire.HeaderStart(b)
	wire.HeaderAddName(b, name)
	wire.HeaderAddValues(b, vv)
	h := wire.HeaderEnd(b)
	const n = 1000 // 1000 headers x 300 values
	wire.FilterResponseStartDenyHeadersVector(b, n)
	for i := 0; i < n; i++ {
		b.PrependUOffsetT(h)
	}
	v := b.EndVector(n)
	wire.FilterResponseStart(b)
	wire.FilterResponseAddId(b, 1)
	wire.FilterResponseAddDenyHeaders(b, v)
	body := wire.FilterResponseEnd(b)
	wire.FrameStart(b)
	wire.FrameAddBodyType(b, wire.BodyFilterResponse)
	wire.FrameAddBody(b, body)
	b.FinishWithFileIdentifier(wire.FrameEnd(b), []byte("SPF1"))
	var r reply
	if err := decodeReply(b.FinishedBytes(), &r); err != errTooMany {
		t.Fatalf("err = %v, want errTooMany", err)
	}
}

// Every truncation and every single-byte corruption of valid frames must be handled without
// a panic, and whatever is accepted must be usable by the bridge without one.
func TestDecodeSurvivesTruncationAndCorruption(t *testing.T) {
	enc := newEncoder()
	var frames [][]byte
	for _, mk := range []func() ([]byte, error){
		func() ([]byte, error) { return enc.FilterResponse(fullResponse()) },
		func() ([]byte, error) { return enc.Error(3, 4, "late") },
		func() ([]byte, error) { return enc.HelloAck(1, 4096, 1, "d", 8) },
	} {
		b, _ := mk()
		frames = append(frames, unframe(t, b))
	}
	var r reply
	for _, f := range frames {
		for n := 0; n < len(f); n++ {
			// f[:n] keeps f's capacity: nothing past n may be read.
			if decodeReply(f[:n], &r) == nil {
				if n < len(f)-8 && r.kind == wire.BodyFilterResponse { // the bridge reads all of it
					t.Errorf("a %d-byte truncation of a %d-byte frame was accepted", n, len(f))
				}
				exercise(&r)
			}
		}
		for i := range f {
			for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, f[i] ^ 0x10} {
				g := bytes.Clone(f)
				g[i] = v
				if decodeReply(g, &r) == nil {
					exercise(&r)
				}
			}
		}
	}
}

// exercise uses an accepted reply as the bridge does: deny, header changes, hello fields.
func exercise(r *reply) {
	switch r.kind {
	case wire.BodyFilterResponse:
		(&bridge{cfg: &Config{ErrorStatus: 503}}).denyFrom(r)
		applyHeaders(map[string][]string{"X-Internal": {"1"}, "A": {"b"}}, &r.resp)
	case wire.BodyHelloAck:
		_, _ = r.ack.Version(), r.ack.MaxFrameBytes()
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	b, _ := newEncoder().FilterResponse(fullResponse())
	buf := unframe(t, b)
	var r reply
	allocs := testing.AllocsPerRun(100, func() {
		if decodeReply(buf, &r) != nil {
			t.Fatal("decode failed")
		}
	})
	if allocs != 0 {
		t.Errorf("decodeReply allocates %.0f times", allocs)
	}
}

// FuzzDecode feeds arbitrary daemon frames to the decoder and, when one is accepted, to the
// code that builds denies and applies header changes: nothing may panic, and nothing accepted
// may carry a header that could split a line.
func FuzzDecode(f *testing.F) {
	enc := newEncoder()
	for _, mk := range []func() ([]byte, error){
		func() ([]byte, error) { return enc.FilterResponse(fullResponse()) },
		func() ([]byte, error) { return enc.FilterResponse(&Response{ID: 1, Verdict: VerdictAllow}) },
		func() ([]byte, error) { return enc.Error(0, 7, "frame too large") },
		func() ([]byte, error) { return enc.HelloAck(1, 1<<20, 1, "filterd", 64) },
	} {
		b, _ := mk()
		f.Add(bytes.Clone(b[4:]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r reply
		if err := decodeReply(data, &r); err != nil {
			if _, ok := err.(failure); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if r.kind != wire.BodyFilterResponse && r.kind != wire.BodyError && r.kind != wire.BodyHelloAck {
			t.Fatalf("accepted kind %d", r.kind)
		}
		if r.kind != wire.BodyFilterResponse {
			exercise(&r)
			return
		}
		d := (&bridge{cfg: &Config{ErrorStatus: 503}}).denyFrom(&r)
		h := map[string][]string{"X-Internal": {"1"}}
		applyHeaders(h, &r.resp)
		for _, m := range []map[string][]string{d.headers, h} {
			for k, vs := range m {
				if checkToken([]byte(k)) != nil {
					t.Fatalf("accepted header name %q", k)
				}
				for _, v := range vs {
					if checkValue([]byte(v)) != nil {
						t.Fatalf("accepted header value %q", v)
					}
				}
			}
		}
		if checkValue([]byte(d.encoding)) != nil {
			t.Fatalf("accepted content type %q", d.encoding)
		}
	})
}

// The plugin writes no unsafe code. The one non-standard package that imports unsafe is the
// FlatBuffers runtime (sizes.go: byteSliceToString, used only by Table.String, which neither
// the plugin nor the flatc-generated code calls; they read []byte views). docs/bridge.md
// records this as an accepted exception.
func TestOnlyTheFlatBuffersRuntimeImportsUnsafe(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{join .Imports \",\"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l + " -") // a package without imports still has three fields
		if f[1] == "false" && slices.Contains(strings.Split(f[2], ","), "unsafe") && f[0] != "github.com/google/flatbuffers/go" {
			t.Errorf("%s imports unsafe", f[0])
		}
	}
	gen, _ := exec.Command("grep", "-rl", "_tab.String(", "internal/wire").Output()
	if len(gen) != 0 {
		t.Errorf("generated code calls Table.String (the runtime's unsafe conversion): %s", gen)
	}
}
