// Package main is a test-only modifier plugin for the gateway harness's own fail-closed checks. It
// imports only the standard library (like any plugin that must load into a host built separately)
// and registers four request modifiers:
//
//	test/allow          allows, and adds X-Test-Plugin: allow to the upstream request
//	test/nil-factory    its factory returns nil (lura would silently skip it)
//	test/panic-factory  its factory panics
//	test/panic-modifier its modifier panics on every request
//
// It is never shipped: scripts/test-e2e.sh builds it next to the real plugin, with the same flags.
package main

import "context"

func main() {}

type registerer string

// ModifierRegisterer is the symbol lura's loader looks up.
var ModifierRegisterer = registerer("harness-test-plugins")

type factory = func(map[string]interface{}) func(interface{}) (interface{}, error)

func (registerer) RegisterModifiers(f func(string, factory, bool, bool)) {
	f("test/allow", allowFactory, true, false)
	f("test/nil-factory", func(map[string]interface{}) func(interface{}) (interface{}, error) { return nil }, true, false)
	f("test/panic-factory", func(map[string]interface{}) func(interface{}) (interface{}, error) { panic("factory") }, true, false)
	f("test/panic-modifier", func(map[string]interface{}) func(interface{}) (interface{}, error) {
		return func(interface{}) (interface{}, error) { panic("modifier") }
	}, true, false)
}

func (registerer) RegisterLogger(interface{})          {}
func (registerer) RegisterContext(ctx context.Context) {}

type headered interface {
	Headers() map[string][]string
}

func allowFactory(map[string]interface{}) func(interface{}) (interface{}, error) {
	return func(in interface{}) (interface{}, error) {
		if r, ok := in.(headered); ok && r.Headers() != nil {
			r.Headers()["X-Test-Plugin"] = []string{"allow"}
		}
		return in, nil
	}
}
