// Package wire holds the Go code flatc 2.0.8 generates from protocol/filterd.fbs.
//
// Every other .go file in this directory (except doc.go and *_test.go) is generated: do not edit
// it, run `go generate ./...` (or ./gen.sh) after changing the schema. TestGeneratedCodeMatchesSchema
// and `./gen.sh --check` fail when the committed code is stale.
//
// The accessors trust every offset in the buffer. The bridge reads daemon replies with them only
// inside its decoder, under recover(), on a buffer clipped to the frame (go-bridge/conn.go).
package wire

//go:generate ./gen.sh
