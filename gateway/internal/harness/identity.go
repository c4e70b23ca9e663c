package harness

import (
	"runtime/debug"

	"github.com/luraproject/lura/v2/core"
	"github.com/luraproject/lura/v2/transport/http/server"
)

// Identity is how the harness names itself in the X-Krakend response header and the User-Agent /
// X-Forwarded-Via sent to backends: honestly, as a lura-based harness, never as KrakenD CE.
func Identity() string {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/luraproject/lura/v2" {
				v = d.Version
			}
		}
	}
	return "gateway-harness (lura " + v + ")"
}

// SetIdentity replaces lura's "KrakenD Version undefined" defaults with Identity().
func SetIdentity() {
	id := Identity()
	core.KrakendHeaderValue = id
	core.KrakendUserAgent = id
	server.UserAgentHeaderValue = []string{id}
}
