package e2e

// Security behaviour through the whole stack (real gateway harness, real plugin, real filterd, demo
// backend): the documented merchant path parameter, encoded paths, and trusted-header smuggling.

import (
	"strings"
	"testing"
)

// newSecStack starts a stack with the routes these tests need: merchants acme and globex (both with
// key k1 and the stack's secret), a payouts route bound to the merchant path parameter, and a
// payments route with enrichment.
func newSecStack(t *testing.T) *stack {
	t.Helper()
	return startStack(t, stackSpec{
		daemon: func(s *stack) map[string]interface{} {
			return filterdConfig(s.socket,
				map[string]interface{}{
					"merchant-auth": map[string]interface{}{"merchants": map[string]interface{}{
						merchant: map[string]interface{}{"status": "active", "keys": s.keys()},
						"globex": map[string]interface{}{"status": "active", "keys": s.keys()},
					}},
					"enrichment": map[string]interface{}{},
				},
				map[string]interface{}{
					"open":     map[string]interface{}{},
					"payouts":  map[string]interface{}{"merchant-auth": map[string]interface{}{"merchant_path_param": "merchant"}},
					"payments": map[string]interface{}{"merchant-auth": nil, "enrichment": nil},
				})
		},
		endpoints: func(s *stack) []interface{} {
			a := s.be.addr
			return []interface{}{
				endpoint("/v1/merchants/{merchant}/payouts", "POST", a, bridge(s.socket, "payouts", []string{"merchant-auth"}, nil)),
				endpoint("/v1/payments", "GET", a, bridge(s.socket, "payments", []string{"merchant-auth", "enrichment"}, nil)),
				probeEndpoint(s.socket, "open"),
			}
		},
	})
}

// The documented config `merchant_path_param: "merchant"` works although lura hands the plugin the
// parameter as "Merchant": the merchant's own path passes, another merchant's path is 403.
func TestSecurityMerchantPathParamThroughGateway(t *testing.T) {
	s := newSecStack(t)
	if r := s.send(t, "POST", "/v1/merchants/acme/payouts", "/v1/merchants/acme/payouts", merchant, nil); r.status != 200 {
		t.Fatalf("own path: status %d, body %s", r.status, r.body)
	}
	if r := s.send(t, "POST", "/v1/merchants/globex/payouts", "/v1/merchants/globex/payouts", merchant, nil); r.status != 403 {
		t.Fatalf("another merchant's path: status %d, want 403", r.status)
	}
	if r := s.send(t, "POST", "/v1/merchants/globex/payouts", "/v1/merchants/globex/payouts", "globex", nil); r.status != 200 {
		t.Fatalf("globex's own path: status %d, body %s", r.status, r.body)
	}
}

// A merchant who signs the raw, percent-encoded path as the docs say is not refused.
func TestSecurityEncodedPathVerifies(t *testing.T) {
	s := newSecStack(t)
	if r := s.send(t, "GET", "/v1/%70ayments", "/v1/%70ayments", merchant, nil); r.status != 200 {
		t.Fatalf("encoded path: status %d, body %s", r.status, r.body)
	}
}

// Trusted headers cannot be smuggled with underscores, nor dropped through Connection.
func TestSecurityTrustedHeaderSmuggling(t *testing.T) {
	s := newSecStack(t)
	r := s.send(t, "GET", "/v1/payments", "/v1/payments", merchant, map[string]string{
		"X_Gw_Merchant_Id": "evil",
		"Connection":       "keep-alive, X-Gw-Merchant-Id, X-Gw-Key-Id",
	})
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	e := r.echo(t)
	t.Logf("backend saw: %v", e.Headers)
	for k, v := range e.Headers {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Gw-Merchant-Id") && (len(v) != 1 || v[0] != merchant) {
			t.Errorf("backend saw %s: %v; want only the trusted %q", k, v, merchant)
		}
		if strings.EqualFold(k, "Connection") && strings.Contains(strings.ToLower(strings.Join(v, ",")), "x-gw-") {
			t.Errorf("backend saw Connection: %v naming a trusted header", v)
		}
	}
	if got, _ := e.header("X-Gw-Merchant-Id"); got != merchant {
		t.Errorf("X-Gw-Merchant-Id = %q, want %q", got, merchant)
	}
}
