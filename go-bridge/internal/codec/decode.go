package codec

import (
	"encoding/binary"
	"errors"
)

// This file is the bounds-checked reader for the frames the daemon sends (HelloAck,
// FilterResponse, Error). The FlatBuffers Go runtime v2.0.8 has no Verifier and its generated
// accessors trust every offset, so a hostile or corrupt buffer would make them panic or read
// garbage. Decode plays the Verifier's role: it walks every table, vector and string the bridge
// will later read, checks each offset and length against the buffer, and only then hands out a
// Reply whose accessors read the already-checked positions (and still re-check them, so that
// misuse cannot panic either).
//
// What is checked (as the C++ Verifier does): root offset and file identifier; each table's
// vtable lies inside the buffer, has an even size >= 4, and every present field lies inside the
// table's inline size; each offset is non-zero, below 2^31 and lands inside the buffer; each
// string has its length inside the buffer and a NUL terminator; each vector's byte size fits.
// A work budget bounds the number of visited items so that a small buffer whose vectors all
// point at one big vector cannot make decoding quadratic.
//
// What is not checked: scalar alignment. The C++ Verifier checks it because misaligned loads
// can trap there; Go reads every scalar byte-wise through encoding/binary, so alignment has no
// effect on safety and rejecting it would only turn a harmless daemon quirk into denies.
//
// Beyond the FlatBuffers structure, Decode checks what the bridge relies on: the union type
// is one the daemon may send, header names are HTTP tokens and header values contain no CR,
// LF or NUL (so a reply can never smuggle a header into the upstream request or the client
// response).

// Kind is the union member a decoded frame carried.
type Kind uint8

// Kinds of reply frames the client accepts.
const (
	KindHelloAck       Kind = 2 // wire.BodyHelloAck
	KindFilterResponse Kind = 4 // wire.BodyFilterResponse
	KindError          Kind = 5 // wire.BodyError
)

// Verdict values (wire.Verdict). Anything but VerdictAllow is a deny.
const (
	VerdictDeny  uint8 = 0
	VerdictAllow uint8 = 1
)

// FileIdentifier is the 4-byte identifier every frame carries at offset 4.
const FileIdentifier = "SPF1"

// maxItems bounds the tables, strings and vector elements Decode visits in one buffer.
const maxItems = 1 << 16

// DecodeError says why a buffer was rejected. The reasons are fixed strings: they never carry
// bytes from the buffer, so they are safe to log.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return "malformed frame: " + e.Reason }

// The rejections are package-level values so that rejecting a frame does not allocate.
var (
	ErrShort       = &DecodeError{"shorter than root offset and file identifier"}
	ErrIdentifier  = &DecodeError{"file identifier is not SPF1"}
	ErrTable       = &DecodeError{"table or vtable out of bounds"}
	ErrField       = &DecodeError{"field outside its table"}
	ErrOffset      = &DecodeError{"offset out of bounds"}
	ErrString      = &DecodeError{"string out of bounds or not NUL-terminated"}
	ErrVector      = &DecodeError{"vector out of bounds"}
	ErrBudget      = &DecodeError{"too many items"}
	ErrUnionType   = &DecodeError{"frame body is not a reply type"}
	ErrMissingBody = &DecodeError{"frame has no body"}
	ErrHeaderName  = &DecodeError{"header name is missing or not an HTTP token"}
	ErrHeaderValue = &DecodeError{"header value contains CR, LF or NUL"}
	errNotPresent  = errors.New("not present") // internal: optional item absent
)

// StringList is a verified vector of strings inside a Reply's buffer.
type StringList struct {
	b     []byte
	start int // position of element 0
	n     int
}

// Len is the number of strings.
func (l StringList) Len() int { return l.n }

// At returns string i (a view into the buffer, not a copy); nil if i is out of range.
func (l StringList) At(i int) []byte {
	if i < 0 || i >= l.n {
		return nil
	}
	s, err := indirectString(l.b, l.start+4*i)
	if err != nil {
		return nil
	}
	return s
}

// HeaderList is a verified vector of Header tables.
type HeaderList struct {
	b     []byte
	start int
	n     int
}

// Len is the number of headers.
func (l HeaderList) Len() int { return l.n }

// At returns header i: its name and its values (views into the buffer).
func (l HeaderList) At(i int) (name []byte, values StringList) {
	if i < 0 || i >= l.n {
		return nil, StringList{}
	}
	var d decoder
	d.b, d.budget = l.b, maxItems
	t, err := d.indirectTable(l.start + 4*i)
	if err != nil {
		return nil, StringList{}
	}
	name, _ = d.stringField(t, 0)
	values, _ = d.stringVector(t, 1)
	return name, values
}

// ResultList is a verified vector of FilterResult tables.
type ResultList struct {
	b     []byte
	start int
	n     int
}

// Len is the number of filter results.
func (l ResultList) Len() int { return l.n }

// At returns filter result i.
func (l ResultList) At(i int) (name []byte, outcome uint8, elapsedNs uint32) {
	if i < 0 || i >= l.n {
		return nil, 0, 0
	}
	var d decoder
	d.b, d.budget = l.b, maxItems
	t, err := d.indirectTable(l.start + 4*i)
	if err != nil {
		return nil, 0, 0
	}
	name, _ = d.stringField(t, 0)
	outcome, _ = t.u8(1, 0)
	elapsedNs, _ = t.u32(2, 0)
	return name, outcome, elapsedNs
}

// Reply is one decoded, verified reply frame. Its byte slices and lists are views into the
// buffer passed to Decode and are valid only while that buffer is.
type Reply struct {
	Kind Kind
	ID   uint64 // FilterResponse and Error

	// FilterResponse
	Verdict         uint8
	Status          uint16
	DenyHeaders     HeaderList
	DenyBody        []byte
	DenyContentType []byte
	SetHeaders      HeaderList
	RemoveHeaders   StringList
	Filters         ResultList

	// Error
	Code    uint16
	Message []byte

	// HelloAck
	Version       uint16
	MaxFrameBytes uint32
	Capabilities  uint64
	ServerName    []byte
	MaxInFlight   uint32
}

// Decode verifies buf (one frame without its length prefix) and fills r. On error r is
// left partially filled and must not be used. Decode never panics and does not allocate.
func Decode(buf []byte, r *Reply) error {
	*r = Reply{}
	d := decoder{b: buf, budget: maxItems}
	if len(buf) < 8 {
		return ErrShort
	}
	if string(buf[4:8]) != FileIdentifier {
		return ErrIdentifier
	}
	root, err := d.indirectTable(0)
	if err != nil {
		return err
	}
	typ, err := root.u8(0, 0)
	if err != nil {
		return err
	}
	body, err := d.tableField(root, 1)
	if err == errNotPresent {
		return ErrMissingBody
	}
	if err != nil {
		return err
	}
	switch Kind(typ) {
	case KindHelloAck:
		return d.helloAck(body, r)
	case KindFilterResponse:
		return d.filterResponse(body, r)
	case KindError:
		return d.errorBody(body, r)
	}
	return ErrUnionType
}

func (d *decoder) helloAck(t table, r *Reply) (err error) {
	r.Kind = KindHelloAck
	if r.Version, err = t.u16(0, 0); err != nil {
		return err
	}
	if r.MaxFrameBytes, err = t.u32(1, 0); err != nil {
		return err
	}
	if r.Capabilities, err = t.u64(2, 0); err != nil {
		return err
	}
	if r.ServerName, err = d.stringField(t, 3); err != nil && err != errNotPresent {
		return err
	}
	if r.MaxInFlight, err = t.u32(4, 0); err != nil {
		return err
	}
	return nil
}

func (d *decoder) errorBody(t table, r *Reply) (err error) {
	r.Kind = KindError
	if r.ID, err = t.u64(0, 0); err != nil {
		return err
	}
	if r.Code, err = t.u16(1, 0); err != nil {
		return err
	}
	if r.Message, err = d.stringField(t, 2); err != nil && err != errNotPresent {
		return err
	}
	return nil
}

func (d *decoder) filterResponse(t table, r *Reply) (err error) {
	r.Kind = KindFilterResponse
	if r.ID, err = t.u64(0, 0); err != nil {
		return err
	}
	if r.Verdict, err = t.u8(1, VerdictDeny); err != nil {
		return err
	}
	if r.Status, err = t.u16(2, 0); err != nil {
		return err
	}
	if r.DenyHeaders, err = d.headerVector(t, 3); err != nil {
		return err
	}
	if r.DenyBody, err = d.byteVector(t, 4); err != nil && err != errNotPresent {
		return err
	}
	if r.DenyContentType, err = d.stringField(t, 5); err != nil && err != errNotPresent {
		return err
	}
	if err = checkValue(r.DenyContentType); err != nil {
		return err
	}
	if r.SetHeaders, err = d.headerVector(t, 6); err != nil {
		return err
	}
	if r.RemoveHeaders, err = d.stringVector(t, 7); err != nil {
		return err
	}
	for i := 0; i < r.RemoveHeaders.n; i++ {
		if err = checkToken(r.RemoveHeaders.At(i)); err != nil {
			return err
		}
	}
	if r.Filters, err = d.resultVector(t, 8); err != nil {
		return err
	}
	return nil
}

// decoder carries the buffer and the remaining work budget.
type decoder struct {
	b      []byte
	budget int
}

func (d *decoder) spend(n int) error {
	d.budget -= n
	if d.budget < 0 {
		return ErrBudget
	}
	return nil
}

// table is a verified table position: its vtable and inline size are inside the buffer.
type table struct {
	b     []byte
	pos   int
	vt    int
	vtLen int
	tLen  int
}

// tableAt verifies the table that starts at pos.
func (d *decoder) tableAt(pos int) (table, error) {
	if err := d.spend(1); err != nil {
		return table{}, err
	}
	so, ok := u32(d.b, pos)
	if !ok {
		return table{}, ErrTable
	}
	vt := int64(pos) - int64(int32(so))
	if vt < 0 || vt > int64(len(d.b))-4 {
		return table{}, ErrTable
	}
	vtLen, _ := u16(d.b, int(vt))
	tLen, _ := u16(d.b, int(vt)+2)
	if vtLen < 4 || vtLen&1 != 0 || vt+int64(vtLen) > int64(len(d.b)) {
		return table{}, ErrTable
	}
	if tLen < 4 || int64(pos)+int64(tLen) > int64(len(d.b)) {
		return table{}, ErrTable
	}
	return table{b: d.b, pos: pos, vt: int(vt), vtLen: int(vtLen), tLen: int(tLen)}, nil
}

// field returns the position of field id (of the given inline size) or errNotPresent.
func (t table) field(id, size int) (int, error) {
	vo := 4 + 2*id
	if vo+2 > t.vtLen {
		return 0, errNotPresent
	}
	off, _ := u16(t.b, t.vt+vo)
	if off == 0 {
		return 0, errNotPresent
	}
	if int(off) < 4 || int(off)+size > t.tLen {
		return 0, ErrField
	}
	return t.pos + int(off), nil
}

func (t table) u8(id int, def uint8) (uint8, error) {
	p, err := t.field(id, 1)
	if err == errNotPresent {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	return t.b[p], nil
}

func (t table) u16(id int, def uint16) (uint16, error) {
	p, err := t.field(id, 2)
	if err == errNotPresent {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	v, _ := u16(t.b, p)
	return v, nil
}

func (t table) u32(id int, def uint32) (uint32, error) {
	p, err := t.field(id, 4)
	if err == errNotPresent {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	v, _ := u32(t.b, p)
	return v, nil
}

func (t table) u64(id int, def uint64) (uint64, error) {
	p, err := t.field(id, 8)
	if err == errNotPresent {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	v, _ := u64(t.b, p)
	return v, nil
}

// deref follows the uoffset stored at p.
func deref(b []byte, p int) (int, error) {
	u, ok := u32(b, p)
	if !ok || u == 0 || u >= 1<<31 {
		return 0, ErrOffset
	}
	target := int64(p) + int64(u)
	if target >= int64(len(b)) {
		return 0, ErrOffset
	}
	return int(target), nil
}

func (d *decoder) indirectTable(p int) (table, error) {
	target, err := deref(d.b, p)
	if err != nil {
		return table{}, err
	}
	return d.tableAt(target)
}

// offsetField returns where the offset-typed field id points to.
func offsetField(t table, id int) (int, error) {
	p, err := t.field(id, 4)
	if err != nil {
		return 0, err
	}
	return deref(t.b, p)
}

func (d *decoder) tableField(t table, id int) (table, error) {
	target, err := offsetField(t, id)
	if err != nil {
		return table{}, err
	}
	return d.tableAt(target)
}

// stringAt verifies the string at s: length, bytes and NUL terminator inside the buffer.
func stringAt(b []byte, s int) ([]byte, error) {
	n, ok := u32(b, s)
	if !ok {
		return nil, ErrString
	}
	end := int64(s) + 4 + int64(n)
	if end+1 > int64(len(b)) || b[end] != 0 {
		return nil, ErrString
	}
	return b[s+4 : int(end) : int(end)], nil
}

func indirectString(b []byte, p int) ([]byte, error) {
	s, err := deref(b, p)
	if err != nil {
		return nil, err
	}
	return stringAt(b, s)
}

func (d *decoder) stringField(t table, id int) ([]byte, error) {
	s, err := offsetField(t, id)
	if err != nil {
		return nil, err
	}
	if err := d.spend(1); err != nil {
		return nil, err
	}
	return stringAt(d.b, s)
}

// vectorField returns the position of element 0 and the element count of vector field id,
// after checking that count*elemSize bytes fit in the buffer.
func (d *decoder) vectorField(t table, id, elemSize int) (int, int, error) {
	v, err := offsetField(t, id)
	if err != nil {
		return 0, 0, err
	}
	n, ok := u32(d.b, v)
	if !ok {
		return 0, 0, ErrVector
	}
	if int64(v)+4+int64(n)*int64(elemSize) > int64(len(d.b)) {
		return 0, 0, ErrVector
	}
	return v + 4, int(n), nil
}

func (d *decoder) byteVector(t table, id int) ([]byte, error) {
	start, n, err := d.vectorField(t, id, 1)
	if err != nil {
		return nil, err
	}
	return d.b[start : start+n : start+n], nil
}

// stringVector verifies every string of vector field id. An absent vector is an empty list.
func (d *decoder) stringVector(t table, id int) (StringList, error) {
	start, n, err := d.vectorField(t, id, 4)
	if err == errNotPresent {
		return StringList{}, nil
	}
	if err != nil {
		return StringList{}, err
	}
	if err := d.spend(n); err != nil {
		return StringList{}, err
	}
	for i := 0; i < n; i++ {
		if _, err := indirectString(d.b, start+4*i); err != nil {
			return StringList{}, err
		}
	}
	return StringList{b: d.b, start: start, n: n}, nil
}

// headerVector verifies every Header of vector field id: a token name and clean values.
func (d *decoder) headerVector(t table, id int) (HeaderList, error) {
	start, n, err := d.vectorField(t, id, 4)
	if err == errNotPresent {
		return HeaderList{}, nil
	}
	if err != nil {
		return HeaderList{}, err
	}
	for i := 0; i < n; i++ {
		h, err := d.indirectTable(start + 4*i)
		if err != nil {
			return HeaderList{}, err
		}
		name, err := d.stringField(h, 0)
		if err == errNotPresent {
			return HeaderList{}, ErrHeaderName
		}
		if err != nil {
			return HeaderList{}, err
		}
		if err := checkToken(name); err != nil {
			return HeaderList{}, err
		}
		values, err := d.stringVector(h, 1)
		if err != nil {
			return HeaderList{}, err
		}
		for j := 0; j < values.n; j++ {
			if err := checkValue(values.At(j)); err != nil {
				return HeaderList{}, err
			}
		}
	}
	return HeaderList{b: d.b, start: start, n: n}, nil
}

func (d *decoder) resultVector(t table, id int) (ResultList, error) {
	start, n, err := d.vectorField(t, id, 4)
	if err == errNotPresent {
		return ResultList{}, nil
	}
	if err != nil {
		return ResultList{}, err
	}
	for i := 0; i < n; i++ {
		r, err := d.indirectTable(start + 4*i)
		if err != nil {
			return ResultList{}, err
		}
		if _, err := d.stringField(r, 0); err != nil && err != errNotPresent {
			return ResultList{}, err
		}
		if _, err := r.u8(1, 0); err != nil {
			return ResultList{}, err
		}
		if _, err := r.u32(2, 0); err != nil {
			return ResultList{}, err
		}
	}
	return ResultList{b: d.b, start: start, n: n}, nil
}

// checkToken accepts an RFC 9110 token (the allowed characters of a header name).
func checkToken(s []byte) error {
	if len(s) == 0 {
		return ErrHeaderName
	}
	for _, c := range s {
		if c >= 0x80 || !tokenChars[c] {
			return ErrHeaderName
		}
	}
	return nil
}

// checkValue rejects the bytes that would split or truncate a header line.
func checkValue(s []byte) error {
	for _, c := range s {
		if c == '\r' || c == '\n' || c == 0 {
			return ErrHeaderValue
		}
	}
	return nil
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func u16(b []byte, p int) (uint16, bool) {
	if p < 0 || p > len(b)-2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(b[p:]), true
}

func u32(b []byte, p int) (uint32, bool) {
	if p < 0 || p > len(b)-4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[p:]), true
}

func u64(b []byte, p int) (uint64, bool) {
	if p < 0 || p > len(b)-8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[p:]), true
}
