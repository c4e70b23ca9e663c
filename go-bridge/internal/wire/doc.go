// Package wire holds the Go code flatc 2.0.8 generates from protocol/filterd.fbs.
//
// Every other .go file in this directory (except doc.go and *_test.go) is generated: do not edit
// it, run `go generate ./...` (or ./gen.sh) after changing the schema. TestGeneratedCodeMatchesSchema
// and `./gen.sh --check` fail when the committed code is stale.
//
// Only the builders (encoding) are used on the request path. Replies from the daemon are never
// read through the generated accessors, which trust every offset and would panic on a hostile
// buffer; they are read by the bounds-checked decoder in internal/codec.
package wire

//go:generate ./gen.sh
