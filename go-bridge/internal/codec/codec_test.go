package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
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
	b, err := NewEncoder(256).FilterResponse(fullResponse())
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	if err := Decode(unframe(t, b), &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindFilterResponse || r.ID != 42 || r.Verdict != VerdictDeny || r.Status != 429 ||
		string(r.DenyBody) != `{"status":429}` || string(r.DenyContentType) != "application/problem+json" {
		t.Fatalf("decoded %+v", r)
	}
	if r.DenyHeaders.Len() != 2 {
		t.Fatalf("deny headers %d", r.DenyHeaders.Len())
	}
	name, vals := r.DenyHeaders.At(1)
	if string(name) != "X-Multi" || vals.Len() != 2 || string(vals.At(0)) != "a" || string(vals.At(1)) != "b" {
		t.Errorf("header 1 = %s %d", name, vals.Len())
	}
	if n, v := r.SetHeaders.At(0); string(n) != "X-Merchant-Id" || string(v.At(0)) != "m-1" {
		t.Errorf("set header = %s", n)
	}
	if r.RemoveHeaders.Len() != 2 || string(r.RemoveHeaders.At(1)) != "Cookie" {
		t.Errorf("remove headers")
	}
	if n, o, e := r.Filters.At(1); string(n) != "rate-limit" || o != 1 || e != 800 {
		t.Errorf("filter 1 = %s %d %d", n, o, e)
	}
	// Out-of-range accessors return zero values instead of panicking.
	if n, _ := r.DenyHeaders.At(2); n != nil {
		t.Error("At past the end")
	}
	if r.RemoveHeaders.At(-1) != nil {
		t.Error("At(-1)")
	}
	if n, _, _ := r.Filters.At(9); n != nil {
		t.Error("Filters.At past the end")
	}
}

func TestDecodeMinimalResponseDefaultsToDeny(t *testing.T) {
	b, _ := NewEncoder(64).FilterResponse(&Response{ID: 1, Verdict: VerdictDeny})
	var r Reply
	if err := Decode(unframe(t, b), &r); err != nil {
		t.Fatal(err)
	}
	if r.Verdict != VerdictDeny || r.DenyBody != nil || r.SetHeaders.Len() != 0 {
		t.Errorf("decoded %+v", r)
	}
}

func TestDecodeErrorAndHelloAck(t *testing.T) {
	enc := NewEncoder(64)
	b, _ := enc.Error(9, uint16(wire.ErrorCodeOverloaded), "busy")
	var r Reply
	if err := Decode(unframe(t, b), &r); err != nil || r.Kind != KindError || r.ID != 9 || r.Code != 5 || string(r.Message) != "busy" {
		t.Fatalf("error frame: %v %+v", err, r)
	}
	b, _ = enc.HelloAck(1, 65536, 1, "filterd", 128)
	if err := Decode(unframe(t, b), &r); err != nil || r.Kind != KindHelloAck || r.Version != 1 || r.MaxFrameBytes != 65536 ||
		r.Capabilities != 1 || string(r.ServerName) != "filterd" || r.MaxInFlight != 128 {
		t.Fatalf("hello ack: %v %+v", err, r)
	}
}

func TestEncodeRequestIsReadableByGeneratedCode(t *testing.T) {
	req := &Request{ID: 7, BudgetUS: 2500, Route: "payments", Filters: []string{"a", "b"}, Method: "GET",
		Path: "/p", Query: map[string][]string{"z": {"1"}, "a": {"2", "3"}}, Headers: map[string][]string{"B": {"1"}, "A": {"x", "y"}},
		ClientIP: "10.0.0.1", Body: []byte("hello"), PathParams: map[string]string{"Id": "9", "Acct": "3"}}
	b, err := NewEncoder(64).FilterRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := unframe(t, b)
	if string(buf[4:8]) != FileIdentifier {
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
		string(r.Path()) != "/p" || string(r.ClientIp()) != "10.0.0.1" || string(r.BodyBytes()) != "hello" ||
		r.FiltersLength() != 2 || string(r.Filters(1)) != "b" {
		t.Fatal("scalar fields")
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
	// An empty body is left out rather than sent as an empty vector.
	b, _ = NewEncoder(64).FilterRequest(&Request{ID: 1, Route: "r"})
	f = wire.GetRootAsFrame(unframe(t, b), 0)
	f.Body(&tab)
	r.Init(tab.Bytes, tab.Pos)
	if r.BodyLength() != 0 {
		t.Error("empty body encoded")
	}
}

func TestEncodeHello(t *testing.T) {
	b, err := NewEncoder(64).Hello(1<<20, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	f := wire.GetRootAsFrame(unframe(t, b), 0)
	var tab flatbuffers.Table
	if f.BodyType() != wire.BodyHello || !f.Body(&tab) {
		t.Fatal("not a Hello")
	}
	var h wire.Hello
	h.Init(tab.Bytes, tab.Pos)
	if h.VersionMin() != 1 || h.VersionMax() != 1 || h.MaxFrameBytes() != 1<<20 || h.Capabilities() != CapFilterTimings || string(h.ClientName()) != "bridge" {
		t.Error("hello fields")
	}
}

func TestDecodeRejects(t *testing.T) {
	enc := NewEncoder(256)
	good, _ := enc.FilterResponse(fullResponse())
	goodBuf := unframe(t, good)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(goodBuf)) }
	hello, _ := NewEncoder(64).Hello(10, "x")

	cases := []struct {
		name string
		buf  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", []byte{1, 2, 3, 4, 'S', 'P', 'F'}, ErrShort},
		{"identifier", mutate(func(b []byte) []byte { b[4] = 'X'; return b }), ErrIdentifier},
		{"root offset zero", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 0); return b }), ErrOffset},
		{"root offset past end", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, uint32(len(b))); return b }), ErrOffset},
		{"root offset huge", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 0xfffffff0); return b }), ErrOffset},
		{"vtable outside", mutate(func(b []byte) []byte {
			root := binary.LittleEndian.Uint32(b)
			binary.LittleEndian.PutUint32(b[root:], 0x7fffffff)
			return b
		}), ErrTable},
		{"vtable negative", mutate(func(b []byte) []byte {
			root := binary.LittleEndian.Uint32(b)
			binary.LittleEndian.PutUint32(b[root:], uint32(int32(-int32(len(b)))))
			return b
		}), ErrTable},
		{"not a reply", unframe(t, hello), ErrUnionType},
		{"truncated", goodBuf[:len(goodBuf)/2], nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Reply
			err := Decode(c.buf, &r)
			if err == nil {
				t.Fatal("accepted")
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Error() == "" {
				t.Fatalf("err %v is not a DecodeError", err)
			}
			if c.want != nil && err != c.want {
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
			b, _ := NewEncoder(64).FilterResponse(resp)
			var r Reply
			err := Decode(unframe(t, b), &r)
			if err != ErrHeaderName && err != ErrHeaderValue {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDecodeHeaderWithoutNameIsRejected(t *testing.T) {
	b := flatbuffers.NewBuilder(64)
	wire.HeaderStart(b)
	h := wire.HeaderEnd(b)
	wire.FilterResponseStartSetHeadersVector(b, 1)
	b.PrependUOffsetT(h)
	v := b.EndVector(1)
	wire.FilterResponseStart(b)
	wire.FilterResponseAddId(b, 1)
	wire.FilterResponseAddSetHeaders(b, v)
	body := wire.FilterResponseEnd(b)
	wire.FrameStart(b)
	wire.FrameAddBodyType(b, wire.BodyFilterResponse)
	wire.FrameAddBody(b, body)
	b.FinishWithFileIdentifier(wire.FrameEnd(b), []byte("SPF1"))
	var r Reply
	if err := Decode(b.FinishedBytes(), &r); err != ErrHeaderName {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeFrameWithoutBody(t *testing.T) {
	b := flatbuffers.NewBuilder(64)
	wire.FrameStart(b)
	b.FinishWithFileIdentifier(wire.FrameEnd(b), []byte("SPF1"))
	var r Reply
	if err := Decode(b.FinishedBytes(), &r); err != ErrMissingBody {
		t.Fatalf("err = %v", err)
	}
}

// Many vector entries pointing at one shared header would make a naive verifier quadratic;
// the work budget stops it.
func TestDecodeWorkBudget(t *testing.T) {
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
	const n = 1000 // 1000 headers x 300 values = 300,000 items > budget
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
	var r Reply
	if err := Decode(b.FinishedBytes(), &r); err != ErrBudget {
		t.Fatalf("err = %v, want ErrBudget", err)
	}
}

// Every truncation and every single-byte corruption of valid frames must be handled without
// a panic; every truncation that cuts into the data must be rejected.
func TestDecodeSurvivesTruncationAndCorruption(t *testing.T) {
	enc := NewEncoder(256)
	var frames [][]byte
	for _, mk := range []func() ([]byte, error){
		func() ([]byte, error) { return enc.FilterResponse(fullResponse()) },
		func() ([]byte, error) { return enc.Error(3, 4, "late") },
		func() ([]byte, error) { return enc.HelloAck(1, 4096, 1, "d", 8) },
	} {
		b, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, unframe(t, b))
	}
	var r Reply
	for _, f := range frames {
		for n := 0; n < len(f); n++ {
			if err := Decode(f[:n], &r); err == nil && n < len(f)-8 {
				t.Errorf("a %d-byte truncation of a %d-byte frame was accepted", n, len(f))
			}
		}
		for i := range f {
			for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, f[i] ^ 0x10} {
				g := bytes.Clone(f)
				g[i] = v
				if Decode(g, &r) == nil {
					exercise(&r)
				}
			}
		}
	}
}

// exercise reads everything a Reply offers, as the bridge would.
func exercise(r *Reply) int {
	n := len(r.DenyBody) + len(r.DenyContentType) + len(r.Message) + len(r.ServerName)
	for _, l := range []HeaderList{r.DenyHeaders, r.SetHeaders} {
		for i := 0; i < l.Len(); i++ {
			name, vals := l.At(i)
			n += len(name)
			for j := 0; j < vals.Len(); j++ {
				n += len(vals.At(j))
			}
		}
	}
	for i := 0; i < r.RemoveHeaders.Len(); i++ {
		n += len(r.RemoveHeaders.At(i))
	}
	for i := 0; i < r.Filters.Len(); i++ {
		name, _, _ := r.Filters.At(i)
		n += len(name)
	}
	return n
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	b, _ := NewEncoder(256).FilterResponse(fullResponse())
	buf := unframe(t, b)
	var r Reply
	allocs := testing.AllocsPerRun(100, func() {
		if Decode(buf, &r) != nil {
			t.Fatal("decode failed")
		}
		exercise(&r)
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %.0f times", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	enc := NewEncoder(256)
	for _, mk := range []func() ([]byte, error){
		func() ([]byte, error) { return enc.FilterResponse(fullResponse()) },
		func() ([]byte, error) { return enc.FilterResponse(&Response{ID: 1, Verdict: VerdictAllow}) },
		func() ([]byte, error) { return enc.Error(0, 7, "frame too large") },
		func() ([]byte, error) { return enc.HelloAck(1, 1<<20, 1, "filterd", 64) },
	} {
		b, err := mk()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(b[4:]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Reply
		if err := Decode(data, &r); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if r.Kind != KindFilterResponse && r.Kind != KindError && r.Kind != KindHelloAck {
			t.Fatalf("accepted kind %d", r.Kind)
		}
		exercise(&r)
	})
}
