package main

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is the checked, read-only configuration of one endpoint's bridge. It is built once,
// by the factory, and never changed afterwards.
type Config struct {
	SocketPath   string        // filterd's Unix socket (absolute path)
	RouteID      string        // route id the daemon knows this endpoint by
	Filters      []string      // filter names, run in this order
	Deadline     time.Duration // longest wait for a verdict, < 5 ms
	MaxBodyBytes int           // larger bodies are refused with 413 without calling the daemon
	ErrorStatus  int           // status of every deny the daemon did not choose itself
	Shadow       bool          // mode "shadow": verdicts are only counted and logged
}

// Limits and defaults of the settings.
const (
	DefaultDeadline     = 3 * time.Millisecond
	MinDeadline         = 100 * time.Microsecond
	MaxDeadline         = 5 * time.Millisecond // exclusive: STD-API-034's 5 ms P99 budget
	DefaultMaxBodyBytes = 1 << 20
	MaxMaxBodyBytes     = 8 << 20 // must stay below proposedMaxFrame minus headers
	DefaultErrorStatus  = 503
	maxRouteIDLen       = 256
	maxFilterNameLen    = 128
	maxFilters          = 64
	maxSocketPathLen    = 107 // sun_path is 108 bytes including the terminating NUL
)

// ConfigError names the offending key and what is wrong with it. The texts never include
// setting values, so they are safe to log.
type ConfigError struct {
	Key    string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s config: %q %s", Name, e.Key, e.Reason)
}

// extraConfigKey is where the settings live inside the plugin/req-resp-modifier block.
const extraConfigKey = Name

var knownKeys = map[string]bool{
	"socket_path": true, "route_id": true, "filters": true, "deadline": true,
	"max_body_bytes": true, "error_status": true, "mode": true,
}

// ParseConfig checks the shape and meaning of the endpoint's plugin block (the map lura hands
// to the factory: {"name": [...], "simpaisa/filter-bridge": {...}}). Unknown keys are errors.
func ParseConfig(block map[string]interface{}) (*Config, error) {
	raw, ok := block[extraConfigKey]
	if !ok {
		return nil, &ConfigError{extraConfigKey, "section is missing"}
	}
	m, ok := raw.(map[string]interface{})
	if !ok {
		return nil, &ConfigError{extraConfigKey, "must be an object"}
	}
	unknown := make([]string, 0)
	for k := range m {
		if !knownKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &ConfigError{unknown[0], "is not a known setting"}
	}

	cfg := &Config{Deadline: DefaultDeadline, MaxBodyBytes: DefaultMaxBodyBytes, ErrorStatus: DefaultErrorStatus}
	var err error
	if cfg.SocketPath, err = requiredString(m, "socket_path", maxSocketPathLen); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.SocketPath) {
		return nil, &ConfigError{"socket_path", "must be an absolute path"}
	}
	if cfg.RouteID, err = requiredString(m, "route_id", maxRouteIDLen); err != nil {
		return nil, err
	}
	if cfg.Filters, err = filterList(m); err != nil {
		return nil, err
	}
	if v, ok := m["deadline"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, &ConfigError{"deadline", `must be a duration string such as "3ms"`}
		}
		d, perr := time.ParseDuration(s)
		if perr != nil {
			return nil, &ConfigError{"deadline", `must be a duration string such as "3ms"`}
		}
		if d < MinDeadline || d >= MaxDeadline {
			return nil, &ConfigError{"deadline", "must be at least 100µs and below 5ms"}
		}
		cfg.Deadline = d
	}
	if v, ok := m["max_body_bytes"]; ok {
		n, ok := wholeNumber(v)
		if !ok || n < 0 || n > MaxMaxBodyBytes {
			return nil, &ConfigError{"max_body_bytes", "must be a whole number from 0 to 8388608"}
		}
		cfg.MaxBodyBytes = int(n)
	}
	if v, ok := m["error_status"]; ok {
		n, ok := wholeNumber(v)
		if !ok || n < 400 || n > 599 {
			return nil, &ConfigError{"error_status", "must be an HTTP error status from 400 to 599"}
		}
		cfg.ErrorStatus = int(n)
	}
	if v, ok := m["mode"]; ok {
		switch v {
		case "enforce":
		case "shadow":
			cfg.Shadow = true
		default:
			return nil, &ConfigError{"mode", `must be "enforce" or "shadow"`}
		}
	}
	return cfg, nil
}

func requiredString(m map[string]interface{}, key string, maxLen int) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", &ConfigError{key, "is required"}
	}
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", &ConfigError{key, "must be a non-empty string"}
	}
	if len(s) > maxLen {
		return "", &ConfigError{key, fmt.Sprintf("must be at most %d bytes", maxLen)}
	}
	return s, nil
}

func filterList(m map[string]interface{}) ([]string, error) {
	v, ok := m["filters"]
	if !ok {
		return nil, &ConfigError{"filters", "is required (use [] for a route without filters)"}
	}
	list, ok := v.([]interface{})
	if !ok {
		return nil, &ConfigError{"filters", "must be a list of filter names"}
	}
	if len(list) > maxFilters {
		return nil, &ConfigError{"filters", fmt.Sprintf("must have at most %d entries", maxFilters)}
	}
	out := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok || s == "" || len(s) > maxFilterNameLen {
			return nil, &ConfigError{"filters", "entries must be non-empty strings of at most 128 bytes"}
		}
		if seen[s] {
			return nil, &ConfigError{"filters", "must not name a filter twice"}
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}

// wholeNumber accepts JSON numbers (float64 after encoding/json) and Go integers.
func wholeNumber(v interface{}) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || n < math.MinInt32 || n > math.MaxInt32 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}
