// Package main is a test-only plugin that exports the registerer symbol but registers no modifier.
// KrakenD CE's `test-plugin -m` reports it [OK]; so must the harness's.
package main

func main() {}

type registerer struct{}

// ModifierRegisterer is the symbol lura's loader looks up.
var ModifierRegisterer = registerer{}

func (registerer) RegisterModifiers(func(string, func(map[string]interface{}) func(interface{}) (interface{}, error), bool, bool)) {
}
